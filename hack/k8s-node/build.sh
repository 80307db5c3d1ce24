#!/usr/bin/env bash
# Builds everything hack/k8s-node runs, outside the repository, and links it
# into $K8SNODE_HOME/bin (see common.sh). Idempotent; up.sh runs it.
#
#   kube-apiserver, etcd, kubectl, kube-controller-manager
#       hack/kube-build.sh, in its cache (/var/tmp/vecnet-kube): the same
#       binaries vecnet's Kubernetes tests use.
#   kubelet, kube-proxy, kube-scheduler, crimini
#       hack/kube-build.sh builds only what the tests need, so these are built
#       here at the same versions: in a module under
#       $K8SNODE_HOME/kube/<version>/build whose go.mod/go.sum start as copies
#       of hack/tools/kube's (the one place the Kubernetes version is pinned);
#       `go mod tidy` there adds what kubelet needs besides. After
#       kube-apiserver and kube-controller-manager (whose packages they
#       share) ~45 s together on 2 cores; warm: a few seconds.
#   vecnetd, vecnet-agent, vecnetctl, vecnet (the CNI plugin)
#       from the working tree, every run (seconds when nothing changed).
#   the pause and busybox images
#       no registry is reachable: docker-archive tarballs made here from a
#       static pause built with gcc and Debian's busybox-static, which up.sh
#       imports with `ctr images import`.
#
# Progress goes to stderr, build logs to $K8SNODE_HOME/logs/build-*.log.
set -euo pipefail
source "$(dirname "$0")/common.sh"
mkdir -p "$BIN" "$LOGS" "$IMAGES"

exec 8>"$K8SNODE_HOME/.build.lock"
flock -n 8 || { log "another build.sh is running; waiting"; flock 8; }

# ---- from hack/kube-build.sh (shared cache) ----
kube_out=$(bash "$REPO/hack/kube-build.sh" kube-apiserver etcd kubectl kube-controller-manager)
KUBE_BIN=$(sed -n 's/^KUBE_BIN=//p' <<<"$kube_out")
[[ -n $KUBE_BIN ]] || die "hack/kube-build.sh printed no KUBE_BIN= line"
for b in kube-apiserver etcd kubectl kube-controller-manager; do ln -sfn "$KUBE_BIN/$b" "$BIN/$b"; done

# ---- kubelet, kube-proxy, kube-scheduler, crimini ----
TOOLS=$REPO/hack/tools/kube
K8S_VERSION=$(go list -C "$TOOLS" -m -f '{{.Version}}' k8s.io/kubernetes)
K8S_BUILD_DATE=$(go list -C "$TOOLS" -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
KDIR=$K8SNODE_HOME/kube/$K8S_VERSION
MOD=$KDIR/build
mkdir -p "$KDIR/bin" "$MOD/crimini"

# The build module: hack/tools/kube's go.mod and go.sum (same versions as
# hack/kube-build.sh's binaries), its tools.go, and the commands built here.
sum=$(cat "$TOOLS/go.mod" "$TOOLS/go.sum" "$TOOLS/tools.go" "$K8SNODE_SRC/crimini/main.go" | sha256sum | cut -d' ' -f1)
if [[ ! -f $MOD/.source || $(cat "$MOD/.source") != "$sum" ]]; then
  log "preparing the build module $MOD (k8s.io/kubernetes $K8S_VERSION, from hack/tools/kube/go.mod)"
  sed 's|^module .*|module vecnet-k8s-node-build|' "$TOOLS/go.mod" >"$MOD/go.mod"
  cp "$TOOLS/go.sum" "$MOD/go.sum"
  cp "$TOOLS/tools.go" "$MOD/tools.go"
  cat >"$MOD/node_tools.go" <<'EOF'
//go:build tools

package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
EOF
  sed '/^\/\/go:build ignore$/d' "$K8SNODE_SRC/crimini/main.go" >"$MOD/crimini/main.go"
  log "go mod tidy (downloads kubelet's dependencies the first time)"
  (cd "$MOD" && go mod tidy) >"$LOGS/build-tidy.log" 2>&1 || { tail -20 "$LOGS/build-tidy.log" >&2; die "go mod tidy failed"; }
  rm -f "$KDIR/bin/crimini"   # rebuilt from the new source
  echo "$sum" >"$MOD/.source"
fi

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
LD="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LD="$LD -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  LD="$LD -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=$K8S_BUILD_DATE"
done
for name in kubelet kube-proxy kube-scheduler crimini; do
  if [[ ! -x $KDIR/bin/$name ]]; then
    pkg=k8s.io/kubernetes/cmd/$name ldflags=$LD eta="first time ~10-30 s after kube-apiserver on 2 cores"
    [[ $name == crimini ]] && pkg=./crimini ldflags="-s -w" eta="seconds"
    log "building $name $K8S_VERSION ($eta; log: $LOGS/build-$name.log)"
    start=$(date +%s)
    # No -trimpath (it would defeat the warm build cache); nice: keep the machine usable.
    if ! (cd "$MOD" && nice -n 10 go build -buildvcs=false -ldflags "$ldflags" -o "$KDIR/bin/.$name.tmp" "$pkg") >"$LOGS/build-$name.log" 2>&1; then
      tail -n 30 "$LOGS/build-$name.log" >&2
      rm -f "$KDIR/bin/.$name.tmp"
      die "building $name failed"
    fi
    mv -f "$KDIR/bin/.$name.tmp" "$KDIR/bin/$name"   # an interrupted build leaves no half binary
    log "built $name in $(($(date +%s) - start))s"
  fi
  ln -sfn "$KDIR/bin/$name" "$BIN/$name"
done

# ---- vecnet, from the working tree ----
log "go build vecnetd vecnet-agent vecnetctl vecnet (working tree)"
(cd "$REPO" && go build -o "$BIN/" ./cmd/vecnetd ./cmd/vecnet-agent ./cmd/vecnetctl ./cmd/vecnet) >"$LOGS/build-vecnet.log" 2>&1 ||
  { cat "$LOGS/build-vecnet.log" >&2; die "building vecnet failed"; }

# ---- images ----
# mkimage NAME ROOTFS OUT ENTRYPOINT_JSON CMD_JSON: a one-layer docker-archive
# tarball, reproducible (sorted, owner 0, mtime 0).
mkimage() {
  local name=$1 rootfs=$2 out=$3 ep=$4 cmd=$5 w diff cfg
  w=$(mktemp -d "$IMAGES/img.XXXX")
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$w/layer.tar" .
  diff=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"hack/k8s-node/build.sh"}]}' \
    "$ep" "$cmd" "$diff" >"$w/config.json"
  cfg=$(sha256sum "$w/config.json" | cut -d' ' -f1)
  mv "$w/config.json" "$w/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$cfg" "$name" >"$w/manifest.json"
  tar -C "$w" -cf "$out.tmp" manifest.json "$cfg.json" layer.tar
  mv -f "$out.tmp" "$out"
  rm -rf "$w"
}
if [[ ! -f $IMAGES/pause.tar || ! -f $IMAGES/busybox.tar ]]; then
  log "building the local images $PAUSE_IMAGE and $TEST_IMAGE"
  rm -rf "$IMAGES/rootfs-pause" "$IMAGES/rootfs-busybox"
  mkdir -p "$IMAGES/rootfs-pause" "$IMAGES/rootfs-busybox"
  # A minimal pause, after kubernetes/build/pause/linux/pause.c: PID 1 of the
  # sandbox, reaps zombies, exits on SIGINT/SIGTERM.
  cat >"$IMAGES/pause.c" <<'EOF'
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static void sigdown(int signo) { psignal(signo, "Shutting down, got signal"); exit(0); }
static void sigreap(int signo) { (void)signo; while (waitpid(-1, NULL, WNOHANG) > 0); }
int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "-v")) { printf("pause k8s-node\n"); return 0; }
  if (getpid() != 1) fprintf(stderr, "Warning: pause should be the first process\n");
  struct sigaction a; memset(&a, 0, sizeof a);
  a.sa_handler = sigdown; sigaction(SIGINT, &a, NULL); sigaction(SIGTERM, &a, NULL);
  a.sa_handler = sigreap; a.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &a, NULL);
  for (;;) pause();
  return 42;
}
EOF
  gcc -static -O2 -s -o "$IMAGES/rootfs-pause/pause" "$IMAGES/pause.c"
  mkimage "$PAUSE_IMAGE" "$IMAGES/rootfs-pause" "$IMAGES/pause.tar" '["/pause"]' 'null'
  r=$IMAGES/rootfs-busybox
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/www" "$r/root"
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
  echo 'root:x:0:' >"$r/etc/group"
  mkimage "$TEST_IMAGE" "$r" "$IMAGES/busybox.tar" 'null' '["sh"]'
fi
log "binaries ready in $BIN (Kubernetes $K8S_VERSION)"
