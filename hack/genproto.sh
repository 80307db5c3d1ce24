#!/usr/bin/env bash
# Regenerates the Go code of api/. Generator versions are pinned here so the
# committed *.pb.go files are reproducible; protoc comes from Debian
# (protobuf-compiler 3.21.x), whose version only affects a header comment.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.11
PROTOC_GEN_GO_GRPC_VERSION=v1.5.1

command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
BIN="$PWD/.cache/bin"
mkdir -p "$BIN"
GOBIN="$BIN" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
GOBIN="$BIN" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

PATH="$BIN:$PATH" protoc -I api \
  --go_out=api --go_opt=paths=source_relative \
  --go-grpc_out=api --go-grpc_opt=paths=source_relative \
  api/vecnet/v1/*.proto \
  api/cni/v1/*.proto
