#!/usr/bin/env bash
# Benchmarks with the figures the issues ask for: in-graph forwarding cost
# per packet and side-by-side throughput against the kernel dataplane.
# Run as root on an otherwise quiet machine; absolute numbers on a shared VM
# are noise, the ratios printed as RESULT lines are what to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh

echo "== in-graph IPv4 forwarding (ip4-input + ip4-lookup + ip4-rewrite), vector size 256"
go test -run '^$' -bench 'BenchmarkIP4Forward' -benchmem -benchtime "${BENCHTIME:-3s}" ./pkg/dataplane/node/ | grep -E '^Benchmark|ns/packet'
echo "== FIB lookups"
go test -run '^$' -bench 'Benchmark(IP4|IP6)Lookup$' -benchmem -benchtime 1s ./pkg/dataplane/fib/ | grep -E '^Benchmark'

echo "== side by side with the kernel (VECNET_BENCH_SECONDS=${VECNET_BENCH_SECONDS:-10} per run)"
VECNET_BENCH=1 go test -count=1 -v -timeout 30m ./test/bench/ | grep -E '^RESULT|round|FAIL|ok'

echo "== CNI ADD/DEL latency through libcni against a real kube-apiserver"
kube_out=$(bash hack/kube-build.sh | tee /dev/stderr)
VECNET_KUBE_BIN=$(sed -n 's/^KUBE_BIN=//p' <<<"$kube_out") VECNET_BENCH=1 \
  go test -count=1 -v -timeout 30m -run TestCNILatency ./test/agent/ | grep -E '^RESULT|FAIL|ok'

echo "== BGP: a new node's convergence, and 10 000 learned routes into the FIB next to BIRD -> kernel"
GOBIN="$PWD/bin" go install github.com/osrg/gobgp/v4/cmd/gobgp@v4.8.0 github.com/osrg/gobgp/v4/cmd/gobgpd@v4.8.0
VECNET_KUBE_BIN=$(sed -n 's/^KUBE_BIN=//p' <<<"$kube_out") VECNET_BENCH=1 VECNET_REQUIRE_GOBGP=1 \
  go test -count=1 -v -timeout 30m -run 'TestBGPConvergence|TestBGPProgramming' ./test/agent/ | grep -E '^RESULT|FAIL|ok'
