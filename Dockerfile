# The image the charts and the product's own Jobs run (k10/kubectl-k10:<version>): one static
# kubectl-k10 on an empty base, no shell, running as an unprivileged user.
#
#   krew/image.sh
#
# builds the static binary (`-C target-feature=+crt-static`: glibc linked in), lays out the few files
# of the image in the build context (rootfs/: the binary, the CA certificates for the object store's
# and the API server's TLS, a passwd/group entry for the unprivileged user, a writable /tmp) and
# builds this file with buildah: no daemon, no registry, no base image.

FROM scratch
LABEL org.opencontainers.image.title="kubectl-k10" \
      org.opencontainers.image.description="Immutable Kubernetes backups on S3 Object Lock" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY rootfs/ /
ENV PATH=/usr/local/bin \
    HOME=/tmp \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["kubectl-k10"]
