package bench.scg;

import java.net.URI;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;
import org.springframework.security.config.web.server.ServerHttpSecurity;
import org.springframework.security.oauth2.jwt.ReactiveJwtDecoder;
import org.springframework.security.web.server.SecurityWebFilterChain;

/**
 * Spring Cloud Gateway with the api-gateway's two benchmark routes: {@code /api/products/**}
 * for anyone, {@code /api/orders/**} for a bearer of a valid auth-service token (Spring
 * Security's OAuth2 resource server). Routes are in application.yml.
 */
@SpringBootApplication
public class BenchGateway {

    public static void main(String[] args) {
        SpringApplication.run(BenchGateway.class, args);
    }

    @Bean
    SecurityWebFilterChain security(ServerHttpSecurity http, ReactiveJwtDecoder decoder) {
        return http.csrf(ServerHttpSecurity.CsrfSpec::disable)
                .httpBasic(ServerHttpSecurity.HttpBasicSpec::disable)
                .formLogin(ServerHttpSecurity.FormLoginSpec::disable)
                .logout(ServerHttpSecurity.LogoutSpec::disable)
                .authorizeExchange(exchanges -> exchanges.pathMatchers("/api/orders/**")
                        .authenticated()
                        .anyExchange()
                        .permitAll())
                .oauth2ResourceServer(server -> server.jwt(jwt -> jwt.jwtDecoder(decoder)))
                .build();
    }

    @Bean
    ReactiveJwtDecoder jwtDecoder(
            @Value("${bench.jwks-url}") String jwksUrl,
            @Value("${bench.issuer}") String issuer,
            @Value("${bench.audience}") String audience) {
        return new Ed25519JwtDecoder(URI.create(jwksUrl), issuer, audience);
    }
}
