# syntax=docker/dockerfile:1
#
# rcsso container image: a static binary on distroless (no shell, no package
# manager), running as the unprivileged user nonroot (65532:65532). Needs
# BuildKit (the default builder since Docker 23; docker buildx build).
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t rcsso .
#   docker run --rm -p 8080:8080 -v "$PWD/rcsso.yaml:/etc/rcsso/rcsso.yaml:ro" \
#     -v rcsso-state:/var/lib/rcsso rcsso
#
# The configuration must listen on all interfaces inside the container
# (listen: 0.0.0.0:8080). With the default SQLite store, state (rcsso.db and
# the generated rcsso.db.key) goes to the volume /var/lib/rcsso, the working
# directory. There is no HEALTHCHECK: without a shell or curl in the image
# nothing could run it. Let the orchestrator probe GET /healthz (the process
# answers) and GET /readyz (store and Rocket.Chat answer); see
# docs/deployment.md.

ARG GO_VERSION=1.26

# The builder runs on the build machine's platform and cross-compiles for the
# target (docker buildx build --platform linux/amd64,linux/arm64 …).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# VERSION is what `rcsso version` prints (.git is not in the build context,
# so the binary cannot read it from the VCS information).
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/rcsso ./cmd/rcsso \
 && mkdir -p /out/state /out/config

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="rcsso" \
      org.opencontainers.image.description="Single sign-on from a website into an embedded Rocket.Chat" \
      org.opencontainers.image.source="https://github.com/rcsso/rcsso" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# distroless/static has CA certificates (for https Rocket.Chat, OIDC, JWKS),
# /etc/passwd with nonroot, and tzdata; rcsso needs nothing else.
COPY --from=build /out/rcsso /rcsso
COPY --from=build --chown=65532:65532 /out/state /var/lib/rcsso
COPY --from=build /out/config /etc/rcsso
USER 65532:65532
WORKDIR /var/lib/rcsso
VOLUME ["/var/lib/rcsso"]
# 8080: rcsso (listen); 9090: Prometheus metrics when metrics_listen is set.
EXPOSE 8080 9090
ENTRYPOINT ["/rcsso"]
CMD ["serve", "--config", "/etc/rcsso/rcsso.yaml"]
