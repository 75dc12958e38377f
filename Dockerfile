# Skein's container image: skein-broker, skeinctl and skein-operator, static, on an empty base.
#
#   docker build .        on a machine that can pull the Rust image: builds here
#   make image            on one that cannot: builds on the host, then packages
#                         with image/Containerfile (this file's last stage)
#
# Both lay out the files with image/rootfs.sh, so they give the same image.

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
# glibc linked statically (crt-static) so the last stage needs no libc.
ENV RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols"
RUN target="$(rustc -vV | sed -n 's/^host: //p')" \
 && cargo build --release --locked --target "$target" -p skein-broker -p skeinctl -p skein-operator \
 && image/rootfs.sh /image/rootfs "target/$target/release"

# Keep in step with image/Containerfile (e2e/test_containers.py compares them).
FROM scratch
COPY --from=build /image/rootfs/ /
COPY --from=build --chown=1000:1000 /image/rootfs/var/lib/skein /var/lib/skein
COPY --from=build --chown=1000:1000 /image/rootfs/tmp /tmp
ENV SKEIN_LOG_DIRS=/var/lib/skein/data
WORKDIR /var/lib/skein
USER 1000:1000
VOLUME /var/lib/skein
# 9092 clients, 9093 the metadata quorum, 9644 HTTP (probes, /metrics, /v1/status).
EXPOSE 9092 9093 9644
ENTRYPOINT ["/usr/local/bin/skein-broker"]
LABEL org.opencontainers.image.title="skein" \
      org.opencontainers.image.description="Skein: a Kafka-compatible broker (skein-broker, skeinctl, skein-operator)" \
      org.opencontainers.image.licenses="Apache-2.0"
