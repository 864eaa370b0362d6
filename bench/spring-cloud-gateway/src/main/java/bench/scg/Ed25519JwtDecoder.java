package bench.scg;

import java.net.URI;
import java.text.ParseException;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.crypto.Ed25519Verifier;
import com.nimbusds.jose.jwk.JWK;
import com.nimbusds.jose.jwk.JWKSet;
import com.nimbusds.jose.jwk.OctetKeyPair;
import com.nimbusds.jwt.SignedJWT;
import org.springframework.core.convert.converter.Converter;
import org.springframework.security.oauth2.core.DelegatingOAuth2TokenValidator;
import org.springframework.security.oauth2.core.OAuth2TokenValidator;
import org.springframework.security.oauth2.core.OAuth2TokenValidatorResult;
import org.springframework.security.oauth2.jwt.BadJwtException;
import org.springframework.security.oauth2.jwt.Jwt;
import org.springframework.security.oauth2.jwt.JwtClaimValidator;
import org.springframework.security.oauth2.jwt.JwtValidationException;
import org.springframework.security.oauth2.jwt.JwtValidators;
import org.springframework.security.oauth2.jwt.MappedJwtClaimSetConverter;
import org.springframework.security.oauth2.jwt.ReactiveJwtDecoder;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * Verifies auth-service's EdDSA (Ed25519) tokens against its JWKS with Nimbus's
 * {@link Ed25519Verifier} (backed by Tink), then applies Spring Security's default
 * validators (exp and nbf with 60 s skew, iss) and the audience.
 *
 * <p>Spring's {@code NimbusReactiveJwtDecoder} cannot be used as it is: its key selector
 * turns JWKs into {@code java.security.Key}s, which Nimbus does not do for OKP keys, so an
 * Ed25519 JWKS yields no candidate key. Like Spring's decoder, this one verifies every
 * token it is given (no cache of verified tokens), and fetches the key set again when it
 * meets an unknown {@code kid}.
 */
final class Ed25519JwtDecoder implements ReactiveJwtDecoder {

    private final URI jwksUri;
    private final OAuth2TokenValidator<Jwt> validator;
    private final Converter<Map<String, Object>, Map<String, Object>> claims =
            MappedJwtClaimSetConverter.withDefaults(Collections.emptyMap());
    private volatile Map<String, Ed25519Verifier> verifiers = Map.of();

    Ed25519JwtDecoder(URI jwksUri, String issuer, String audience) {
        this.jwksUri = jwksUri;
        this.validator = new DelegatingOAuth2TokenValidator<>(
                JwtValidators.createDefaultWithIssuer(issuer),
                new JwtClaimValidator<List<String>>("aud", aud -> aud != null && aud.contains(audience)));
    }

    @Override
    public Mono<Jwt> decode(String token) {
        SignedJWT parsed;
        try {
            parsed = SignedJWT.parse(token);
        } catch (ParseException e) {
            return Mono.error(new BadJwtException("malformed token", e));
        }
        String kid = parsed.getHeader().getKeyID();
        if (!JWSAlgorithm.EdDSA.equals(parsed.getHeader().getAlgorithm()) || kid == null) {
            return Mono.error(new BadJwtException("not an EdDSA token with a kid"));
        }
        Ed25519Verifier known = verifiers.get(kid);
        Mono<Ed25519Verifier> verifier = known != null
                ? Mono.just(known)
                : refresh().flatMap(found -> found.containsKey(kid)
                        ? Mono.just(found.get(kid))
                        : Mono.error(new BadJwtException("unknown kid")));
        return verifier.map(v -> verified(parsed, v, token));
    }

    private Jwt verified(SignedJWT parsed, Ed25519Verifier verifier, String token) {
        try {
            if (!parsed.verify(verifier)) {
                throw new BadJwtException("bad signature");
            }
            Map<String, Object> converted = claims.convert(parsed.getJWTClaimsSet().toJSONObject());
            Jwt jwt = Jwt.withTokenValue(token)
                    .headers(h -> h.putAll(parsed.getHeader().toJSONObject()))
                    .claims(c -> c.putAll(converted))
                    .build();
            OAuth2TokenValidatorResult result = validator.validate(jwt);
            if (result.hasErrors()) {
                throw new JwtValidationException("invalid token", result.getErrors());
            }
            return jwt;
        } catch (JOSEException | ParseException e) {
            throw new BadJwtException(e.getMessage(), e);
        }
    }

    private Mono<Map<String, Ed25519Verifier>> refresh() {
        return Mono.fromCallable(() -> {
                    Map<String, Ed25519Verifier> found = new HashMap<>();
                    for (JWK jwk : JWKSet.load(jwksUri.toURL()).getKeys()) {
                        if (jwk instanceof OctetKeyPair okp && jwk.getKeyID() != null) {
                            found.put(jwk.getKeyID(), new Ed25519Verifier(okp.toPublicJWK()));
                        }
                    }
                    verifiers = Map.copyOf(found);
                    return verifiers;
                })
                .subscribeOn(Schedulers.boundedElastic());
    }
}
