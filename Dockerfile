# The image the charts and the product's own Jobs run (k10/kubectl-k10:<version>): one static
# kubectl-k10 on an empty base, no shell, running as an unprivileged user.
#
#   docker build -t k10/kubectl-k10:0.1.0 .
#
# The builder is Alpine, whose Rust targets musl and links statically by default: the binary needs
# nothing from the final image but the CA certificates, for the object store's and the API server's TLS.

FROM rust:1-alpine AS builder
# C toolchain for the crates with C parts (aws-lc-sys, zstd-sys); CA certificates for the final image.
RUN apk add --no-cache musl-dev gcc g++ make cmake perl ca-certificates
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --bin kubectl-k10 \
    && if readelf -l target/release/kubectl-k10 | grep -q 'program interpreter'; then \
         echo "kubectl-k10 is not statically linked" >&2; exit 1; \
       fi \
    && target/release/kubectl-k10 --version
# The final image's few files: a writable /tmp (HOME; the charts mount an emptyDir over it) and a
# passwd/group entry for the unprivileged user, so tools that look the user up find it.
RUN mkdir -p /rootfs/tmp /rootfs/etc \
    && chmod 1777 /rootfs/tmp \
    && echo 'nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin' >/rootfs/etc/passwd \
    && echo 'nonroot:x:65532:' >/rootfs/etc/group

FROM scratch
LABEL org.opencontainers.image.title="kubectl-k10" \
      org.opencontainers.image.description="Immutable Kubernetes backups on S3 Object Lock" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /rootfs/ /
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /src/target/release/kubectl-k10 /usr/local/bin/kubectl-k10
ENV PATH=/usr/local/bin \
    HOME=/tmp \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["kubectl-k10"]
