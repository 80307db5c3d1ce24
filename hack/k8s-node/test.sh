#!/usr/bin/env bash
# vecnet as the only CNI of a real Kubernetes node, end to end: up.sh, then
# smoke.sh, then down.sh (also when up or smoke fails, or on Ctrl-C). Run as
# root; installs what it needs (apt packages; Kubernetes binaries built from
# the Go module proxy into /var/tmp, see build.sh). Exits non-zero when a
# step or a required check fails.
#
#   bash hack/k8s-node/test.sh             # cold ~10 min (builds Kubernetes), warm ~1 min
#   K8S_NODE_KEEP=1 bash hack/k8s-node/test.sh   # leave the node up afterwards
#                                          # (then: source hack/k8s-node/env.sh; ...; down.sh)
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh
[[ $(id -u) -eq 0 ]] || die "run as root: sudo make k8s-node (it runs containerd, kubelet and vecnetd)"

T0=$(date +%s)
step() { printf '\n\033[1m== %s\033[0m (%ss)\n' "$*" "$(($(date +%s) - T0))" >&2; }
result=1
finish() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if ((result != 0)); then
    # What usually says why, before down.sh stops everything.
    for c in vecnet-agent vecnetd kubelet containerd; do
      [[ -f $LOGS/$c.log ]] || continue
      echo "---- last lines of $LOGS/$c.log" >&2
      grep -Ei 'error|fail|warn' "$LOGS/$c.log" | tail -n 8 >&2
    done
  fi
  if [[ ${K8S_NODE_KEEP:-0} == 1 ]]; then
    log "K8S_NODE_KEEP=1: the node stays up (source hack/k8s-node/env.sh; hack/k8s-node/down.sh to stop it)"
  else
    step "down"
    bash ./down.sh
  fi
  if ((result == 0)); then
    echo "k8s-node: PASSED in $(($(date +%s) - T0))s" >&2
  else
    echo "k8s-node: FAILED (exit $rc) after $(($(date +%s) - T0))s; logs in $LOGS" >&2
  fi
  exit $((result == 0 ? 0 : (rc == 0 ? 1 : rc)))
}
trap finish EXIT
trap 'exit 130' INT TERM

# A node left up by an earlier run (K8S_NODE_KEEP=1, or a killed run) goes first.
for c in "${COMPONENTS[@]}"; do
  if pid_alive "$c"; then
    step "down (a node is still up from an earlier run)"
    bash ./down.sh
    break
  fi
done
step "up"
bash ./up.sh
step "smoke"
bash ./smoke.sh
result=0
