#!/usr/bin/env bash
# Builds the Kubernetes binaries that vecnet's tests need (test/kubeenv) from
# the Go module proxy, into a cache outside the repository:
#   ${VECNET_KUBE_DIR:-/var/tmp/vecnet-kube}/<k8s version>/bin
#
#   bash hack/kube-build.sh                      # kube-apiserver + etcd (what test/kubeenv needs)
#   bash hack/kube-build.sh kubectl kube-controller-manager   # those too (hack/test.sh and vecnet-lab ask for all four)
#
# Idempotent: a binary already in the cache is only reported. The last line is
# KUBE_BIN=<dir>, to hand to the tests as VECNET_KUBE_BIN (hack/test.sh does).
# Progress goes to stderr, build logs to <cache>/<version>/logs.
#
# Versions come from hack/tools/kube/go.mod, a module of its own (the main
# module never depends on k8s.io/kubernetes): k8s.io/kubernetes and
# go.etcd.io/etcd/server/v3 there. Kubernetes is v1.37.1, not v1.37.2: the
# proxy serves v1.37.2's go.mod but refuses its zip ("not available").
#
# etcd: built from the same module (go.etcd.io/etcd/server/v3 v3.7.0, the
# version Kubernetes 1.37 itself requires and tests with) rather than Debian's
# etcd-server 3.4.23. kube-apiserver 1.37 does start on 3.4, but: upstream
# supports etcd >= 3.5 only (kubeadm's minimum external etcd is 3.5.24); on 3.4
# it logs "RequestWatchProgress feature is not supported" and then refuses
# every watch-list stream, which client-go 0.37 informers use by default
# (WatchListClient), so each informer errors and falls back to LIST: not the
# code path vecnet's agent takes in production. Building it costs ~1-2 min
# once and needs no apt, only the Go module proxy like the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

TOOLS=hack/tools/kube
K8S_VERSION=$(go list -C "$TOOLS" -m -f '{{.Version}}' k8s.io/kubernetes)
ETCD_VERSION=$(go list -C "$TOOLS" -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
# Release date of the tag (the proxy's .info Time) for --version's buildDate;
# the proxy keeps no commit for it, so gitCommit stays empty.
K8S_BUILD_DATE=$(go list -C "$TOOLS" -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)

ROOT=$(realpath -m "${VECNET_KUBE_DIR:-/var/tmp/vecnet-kube}") # absolute: tests run in other dirs
BIN=$ROOT/$K8S_VERSION/bin
LOGS=$ROOT/$K8S_VERSION/logs
mkdir -p "$BIN" "$LOGS"

want=("$@")
((${#want[@]})) || want=(kube-apiserver etcd)
for w in "${want[@]}"; do
  case $w in
    kube-apiserver | kube-controller-manager | kubectl | etcd) ;;
    *) echo "kube-build: unknown binary '$w' (kube-apiserver, kube-controller-manager, kubectl, etcd)" >&2; exit 2 ;;
  esac
done

say() { echo "kube-build: $*" >&2; }

# One build at a time per cache (two test runs starting together).
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
  say "another kube-build.sh is building into $ROOT; waiting for it..."
  flock 9
fi

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
LD="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LD="$LD -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  LD="$LD -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=$K8S_BUILD_DATE"
done

version_of() {
  case $1 in
    kubectl) "$BIN/kubectl" version --client 2>/dev/null | head -1 ;;
    etcd) "$BIN/etcd" --version 2>/dev/null | head -1 ;;
    *) "$BIN/$1" --version 2>/dev/null | head -1 ;;
  esac
}

for name in "${want[@]}"; do
  if [[ -x $BIN/$name ]]; then
    say "$name present: $(version_of "$name")"
    continue
  fi
  # first-build times on 2 cores, each after the ones before it (shared packages are then cached)
  case $name in
    etcd) pkg=go.etcd.io/etcd/server/v3 ver=$ETCD_VERSION ldflags="-s -w" eta="~20 s after kube-apiserver" ;;
    kube-apiserver) pkg=k8s.io/kubernetes/cmd/$name ver=$K8S_VERSION ldflags=$LD eta="~4-6 min" ;;
    kubectl) pkg=k8s.io/kubernetes/cmd/$name ver=$K8S_VERSION ldflags=$LD eta="~1 min after kube-apiserver" ;;
    kube-controller-manager) pkg=k8s.io/kubernetes/cmd/$name ver=$K8S_VERSION ldflags=$LD eta="~2 min after kube-apiserver" ;;
  esac
  say "building $name $ver (first time $eta on 2 cores, seconds with a warm Go build cache; log: $LOGS/build-$name.log)..."
  start=$(date +%s)
  # No -trimpath (it would defeat the warm build cache); nice: keep the machine usable.
  if ! (cd "$TOOLS" && nice -n 10 go build -buildvcs=false -ldflags "$ldflags" -o "$BIN/.$name.tmp" "$pkg") \
    >"$LOGS/build-$name.log" 2>&1; then
    say "building $name FAILED; last lines of $LOGS/build-$name.log:"
    tail -n 30 "$LOGS/build-$name.log" >&2
    rm -f "$BIN/.$name.tmp"
    exit 1
  fi
  mv -f "$BIN/.$name.tmp" "$BIN/$name" # atomic: an interrupted build leaves no half binary
  say "built $name in $(($(date +%s) - start))s: $(version_of "$name")"
done

echo "KUBE_BIN=$BIN"
