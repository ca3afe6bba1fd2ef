# The data plane: one image with sluice-proxy and sluice-init, iptables (legacy and nft
# backends, for sluice-init's --backend auto|legacy|nft) and iproute2 (tproxy mode's
# routing rules). Two tags of it, differing only in the entrypoint, because injection runs
# each container with the image's entrypoint (images.proxy and images.init of the injector
# config):
#   docker build -f docker/proxy.Dockerfile --target proxy -t ghcr.io/sluice-mesh/sluice-proxy:0.1.0 .
#   docker build -f docker/proxy.Dockerfile --target init  -t ghcr.io/sluice-mesh/sluice-init:0.1.0 .
# (the second build reuses every layer of the first).

FROM rust:1.91-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist -p sluice-proxy -p sluice-init \
        --bin sluice-proxy --bin sluice-init \
    && cp target/dist/sluice-proxy target/dist/sluice-init /usr/local/bin/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables iproute2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1337 sluice-proxy \
    && useradd --uid 1337 --gid 1337 --no-create-home --shell /usr/sbin/nologin sluice-proxy
COPY --from=build /usr/local/bin/sluice-proxy /usr/local/bin/sluice-init /usr/local/bin/
# The proxy's uid (proxy.uid of the injector config; sluice-init never captures its
# traffic). The init container runs as root through its securityContext (runAsUser: 0).
USER 1337:1337

# sluice-init: programs the pod's iptables, then exits.
FROM runtime AS init
ENTRYPOINT ["/usr/local/bin/sluice-init"]

# sluice-proxy (last, so a plain `docker build` gives the proxy); classic mode's postStart
# hook runs `sluice-proxy wait` from the PATH.
FROM runtime AS proxy
EXPOSE 15001 15006 15021 15090
ENTRYPOINT ["/usr/local/bin/sluice-proxy"]
