#!/usr/bin/env bash
# Stops everything up.sh started (by its recorded PID, never by name) and
# undoes its changes to the host: pods and sandboxes (CNI DEL through vecnet),
# vecnetd's interfaces, the node bridge, the forward guard, kube-proxy's
# iptables rules, the vecnet plugin and conflist, sysctls. Idempotent: safe to
# run any number of times, and after a partial up.sh.
#
# Kept for the next run: builds and images under $K8SNODE_HOME, the PKI, and
# containerd's image store in /var/lib/containerd.
set -uo pipefail
source "$(dirname "$0")/common.sh"

[[ $(id -u) -eq 0 ]] || die "run as root"
mkdir -p "$RUN" "$LOGS" "$STATE"

stop() { # NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS
  local name=$1 t=${2:-20} pid i
  [[ -f $RUN/$name.pid ]] || return 0
  pid=$(cat "$RUN/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for ((i = 0; i < t * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "SIGKILL $name ($pid)"; kill -KILL "$pid"; fi
    log "stopped $name ($pid)"
  fi
  rm -f "$RUN/$name.pid"
}

# 1. Pods go the way they do on a real node: the kubelet stops them and its
#    runtime calls the vecnet plugin's DEL (vecnet-agent releases the address
#    and has vecnetd remove the pod's tun) while everything is still up.
if pid_alive kube-apiserver && pid_alive kubelet; then
  log "deleting workloads and pods"
  kubectl delete deploy,ds,rs,sts,job,cronjob --all -A --wait=false >/dev/null 2>&1
  kubectl delete pods --all -A --grace-period=1 --timeout=60s >/dev/null 2>&1
fi

# 2. Node agents.
stop kube-proxy
if [[ -x $BIN/kube-proxy ]] && iptables-save 2>/dev/null | grep -q '^:KUBE-'; then
  kube-proxy --cleanup >"$LOGS/kube-proxy-cleanup.log" 2>&1   # its iptables/nftables rules
fi
stop kubelet

# 3. Sandboxes left (the kubelet was gone, or a DEL failed): StopPodSandbox
#    runs the CNI DEL, while vecnet-agent still answers it.
if pid_alive containerd && [[ -x $BIN/crimini ]]; then
  crimini -e "unix://$CRI_SOCK" rmp-all 2>&1 | sed 's/^/  /' >&2
fi
rm -f "$CNI_CONFLIST" "$CNI_CONFLIST.tmp"

# 4. vecnet: on SIGTERM vecnetd removes every interface it made (the pods'
#    tuns, the host tun and its routes, the uplink's tap and tc programs).
stop vecnet-agent
stop vecnetd 30
rm -f "$VECNETD_SOCK" "$VECNET_CNI_SOCK"
rmdir "$VECNET_RUN" 2>/dev/null
# vecnetd's tun and tap devices vanish with the process that made them (even
# SIGKILLed), so one still here belongs to another vecnetd: leave it alone.
for l in "$VECNET_HOST_IF" "vnt-$NODE_IFACE"; do
  ip link show "$l" >/dev/null 2>&1 && log "note: $l still exists: another vecnetd runs in this network namespace"
done

# 5. Control plane.
stop kube-scheduler
stop kube-controller-manager
stop kube-apiserver
stop etcd

# 6. containerd, and any shims or containers it left (PIDs from its own files).
stop containerd 30
for f in /run/containerd/io.containerd.runtime.v2.task/k8s.io/*/shim.pid /run/containerd/io.containerd.runtime.v2.task/k8s.io/*/init.pid; do
  [[ -f $f ]] || continue
  p=$(cat "$f")
  [[ -n $p ]] && kill -0 "$p" 2>/dev/null && { log "killing leftover $(basename "$f") $p"; kill -KILL "$p"; }
done
# Mounts of pods and containers (volumes, shm, rootfs, netns), deepest first.
for m in $(awk '$2 ~ "^/var/lib/kubelet(/|$)|^/run/containerd/|^/run/netns/cni-" {print $2}' /proc/mounts | sort -r); do
  umount -l "$m" 2>/dev/null
done
rm -f /run/netns/cni-* 2>/dev/null

# 7. Host networking.
ip link show "$NODE_IFACE" >/dev/null 2>&1 && ip link del "$NODE_IFACE"
nft delete table inet k8s_node_guard 2>/dev/null
# Chains kubelet and kube-proxy leave (KUBE-*); none existed before up.sh.
for ipt in iptables ip6tables; do
  for t in nat filter mangle; do
    chains=$($ipt -t $t -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^KUBE-/ {print $2}')
    [[ -n $chains ]] || continue
    for ch in $chains; do   # the jumps into them from built-in chains
      $ipt -t $t -S 2>/dev/null | awk -v c="$ch" '$1=="-A" && $0 ~ "-j "c"( |$)" {sub("^-A","-D"); print}' |
        while read -r rule; do eval "$ipt -t $t $rule"; done
    done
    for ch in $chains; do $ipt -t $t -F "$ch"; done
    for ch in $chains; do $ipt -t $t -X "$ch"; done
  done
done 2>&1 | grep -v 'iptables-legacy tables present' >&2
for t in kube-proxy; do nft delete table ip $t 2>/dev/null; nft delete table ip6 $t 2>/dev/null; done

# 8. What up.sh installed on the host, and the runtime's per-pod leftovers.
if [[ -f $STATE/installed ]]; then
  sort -u "$STATE/installed" | while read -r f; do rm -f "$f"; done
  rm -f "$STATE/installed"
fi
# Directories of the kubelet and the runtime that up.sh found missing (so only
# this node's pods ever lived there).
if [[ -f $STATE/created ]]; then
  sort -ru "$STATE/created" | while read -r d; do rm -rf "$d"; done
  rm -f "$STATE/created"
fi
rmdir "$CNI_CONF_DIR" "$CNI_BIN_DIR" 2>/dev/null
rm -rf "$STATE/etcd" "$STATE/uplink"
if [[ -f $STATE/sysctl.orig ]]; then
  while IFS= read -r kv; do sysctl -qw "$kv" 2>/dev/null; done <"$STATE/sysctl.orig"
  rm -f "$STATE/sysctl.orig"
  log "sysctls restored"
fi
log "down (kept: builds in $K8SNODE_HOME, the PKI, containerd's images)"
exit 0
