# syntax=docker/dockerfile:1
# check=error=true
#
# One build for the six service binaries, one small image per service, chosen by target:
#
#   docker build --target order-service -t ghcr.io/ecom/order-service:dev .
#
# Targets: api-gateway, auth-service, product-service, order-service, inventory-service,
# notification-service. docker-compose.yml builds each of them from this file; the
# builder stages are shared, so the workspace compiles once for all six.
#
# Layers:
#   chef      the Rust toolchain plus cargo-chef
#   planner   reduces the workspace to a dependency recipe (changes only with manifests)
#   builder   compiles the dependencies from the recipe (cached while Cargo.toml/Cargo.lock
#             do not change), then the workspace's own crates
#   runtime   distroless glibc base (ca-certificates, libgcc, libssl3: order- and notification-
#             service link the system's OpenSSL for Kafka over TLS; nothing else is linked),
#             non-root user 65532, plus busybox's wget as the only extra program, for
#             HEALTHCHECK: the services have no probe mode of their own
#   <service> runtime + one binary, its port, its health check and entrypoint

ARG RUST_VERSION=1.95.0
ARG CARGO_CHEF_VERSION=0.1.78

FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The six services: each a crate, a binary and a target below.
ARG SERVICES="api-gateway auth-service product-service order-service inventory-service notification-service"
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json $(printf -- '-p %s ' ${SERVICES})
COPY . .
RUN cargo build --release --locked $(printf -- '-p %s ' ${SERVICES}) \
 && mkdir -p /out/bin /out/var/lib/ecom/keys \
 && for service in ${SERVICES}; do cp "target/release/${service}" /out/bin/; done

# A statically linked busybox; installed under the name wget it runs only that applet.
FROM busybox:1.37.0-uclibc AS probe

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=probe /bin/busybox /usr/local/bin/wget
# Working directory and the signing-key directory, owned by the runtime user, so a named
# volume mounted on /var/lib/ecom/keys starts out writable by it.
COPY --from=builder --chown=65532:65532 /out/var/lib/ecom /var/lib/ecom
WORKDIR /var/lib/ecom
USER 65532:65532

FROM runtime AS auth-service
COPY --from=builder /out/bin/auth-service /usr/local/bin/auth-service
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/wget", "-q", "-T", "2", "-O", "/dev/null", "http://127.0.0.1:8081/health/ready"]
ENTRYPOINT ["/usr/local/bin/auth-service"]

FROM runtime AS product-service
COPY --from=builder /out/bin/product-service /usr/local/bin/product-service
EXPOSE 8082
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/wget", "-q", "-T", "2", "-O", "/dev/null", "http://127.0.0.1:8082/health/ready"]
ENTRYPOINT ["/usr/local/bin/product-service"]

FROM runtime AS order-service
COPY --from=builder /out/bin/order-service /usr/local/bin/order-service
EXPOSE 8083
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/wget", "-q", "-T", "2", "-O", "/dev/null", "http://127.0.0.1:8083/health/ready"]
ENTRYPOINT ["/usr/local/bin/order-service"]

FROM runtime AS inventory-service
COPY --from=builder /out/bin/inventory-service /usr/local/bin/inventory-service
EXPOSE 8084
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/wget", "-q", "-T", "2", "-O", "/dev/null", "http://127.0.0.1:8084/health/ready"]
ENTRYPOINT ["/usr/local/bin/inventory-service"]

FROM runtime AS notification-service
COPY --from=builder /out/bin/notification-service /usr/local/bin/notification-service
EXPOSE 8085
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/wget", "-q", "-T", "2", "-O", "/dev/null", "http://127.0.0.1:8085/health/ready"]
ENTRYPOINT ["/usr/local/bin/notification-service"]

# Last, so a plain `docker build .` gives the public entry point.
FROM runtime AS api-gateway
COPY --from=builder /out/bin/api-gateway /usr/local/bin/api-gateway
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/wget", "-q", "-T", "2", "-O", "/dev/null", "http://127.0.0.1:8080/health/ready"]
ENTRYPOINT ["/usr/local/bin/api-gateway"]
