# Builds the two seatledger programs into one small image:
#   server    the service (ENTRYPOINT)
#   graphsim  the Graph simulator (docker run --entrypoint graphsim ...)
# The image has no PostgreSQL: give the server DATABASE_URL.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/server ./cmd/server \
 && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/graphsim ./cmd/graphsim

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin seatledger \
 && install -d -o seatledger /sim
COPY --from=build /out/server /out/graphsim /usr/local/bin/
# /sim is where graphsim writes its CA in docker-compose.yml; a new named
# volume takes this directory's owner, so the unprivileged user can write.
USER seatledger
# Inside a container the loopback defaults would be unreachable.
ENV SEATLEDGER_GRPC_ADDR=0.0.0.0:9090 \
    SEATLEDGER_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["server"]
