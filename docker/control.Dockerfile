# sluice-control: the control plane (admission webhook on 9443, discovery on 15012).
#   docker build -f docker/control.Dockerfile -t ghcr.io/sluice-mesh/sluice-control:0.1.0 .
# Rust only (rustls with ring, no OpenSSL), so the binary needs nothing but glibc.

FROM rust:1.91-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist -p sluice-control --bin sluice-control \
    && cp target/dist/sluice-control /sluice-control

# glibc and CA certificates, no shell; runs as 65532 (the chart's runAsUser) on a read-only
# root filesystem.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sluice-control /usr/local/bin/sluice-control
USER 65532:65532
EXPOSE 9443 15012
ENTRYPOINT ["/usr/local/bin/sluice-control"]
