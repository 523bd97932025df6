# The router image: one static binary, /router, on a distroless base that
# runs as the non-root user 65532. Caddy runs from the official caddy image
# in the same Pod (see manifests/base/deployment.yaml).
#
#   docker build -t caddy-k8s-router:dev .
#
# The build stage runs on the builder's platform and cross-compiles for the
# target one, so `docker buildx build --platform linux/amd64,linux/arm64`
# needs no emulation.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src

# Download modules in their own layer, so a source change reuses it.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# CGO off: a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/router ./cmd/router

FROM gcr.io/distroless/static-debian13:nonroot
COPY --from=build /out/router /router
USER 65532:65532
ENTRYPOINT ["/router"]
