# custom-sd: a static binary on a distroless base, running as a non-root user.
#
#   docker build -t custom-sd --build-arg VERSION=$(git describe --tags --always) .
#   docker run -v sd:/sd custom-sd --consul.server=consul:8500
#
# The build stage runs `make build`, the same command as a local build:
# CGO_ENABLED=0, and the version set with -ldflags -X in prometheus/common/version.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN make build VERSION=$VERSION REVISION=$REVISION BRANCH=docker \
 && mkdir -p /out/sd

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/custom-sd /bin/custom-sd
# The output directory belongs to the runtime user; a named volume mounted
# here starts with that ownership.
COPY --from=build --chown=65532:65532 /out/sd /sd
USER 65532:65532
WORKDIR /sd
EXPOSE 9099
VOLUME ["/sd"]
ENTRYPOINT ["/bin/custom-sd"]
CMD ["--output.file=/sd/custom_sd.json"]
