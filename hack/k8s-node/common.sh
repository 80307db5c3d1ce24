# Settings and helpers of hack/k8s-node (sourced by its scripts, not run).
#
# A real single-node Kubernetes on this machine, with vecnet as its only CNI:
# etcd + kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
# kube-proxy (built from the Go module proxy at the version of
# hack/tools/kube/go.mod), containerd and runc from Debian, and vecnetd +
# vecnet-agent running on the host as their DaemonSet pod would.
#
# Everything the scripts make outside the repository lives under $K8SNODE_HOME
# (builds, certificates, logs, state); nothing is written into the repository.

K8SNODE_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # hack/k8s-node
REPO=$(cd "$K8SNODE_SRC/../.." && pwd)
K8SNODE_HOME=$(realpath -m "${VECNET_K8S_NODE_DIR:-/var/tmp/vecnet-k8s-node}")
BIN=$K8SNODE_HOME/bin         # kubelet, kube-proxy, kube-scheduler, crimini, vecnet's binaries (links to the others)
PKI=$K8SNODE_HOME/pki         # CA, serving certificates, static tokens (kept across runs)
CONF=$K8SNODE_HOME/conf       # kubeconfigs and component configurations (rewritten by up.sh)
RUN=$K8SNODE_HOME/run         # <component>.pid of every process up.sh started
LOGS=$K8SNODE_HOME/logs       # <component>.log
STATE=$K8SNODE_HOME/state     # etcd data (fresh every up), saved sysctls
IMAGES=$K8SNODE_HOME/images   # the local pause and busybox images (docker-archive tarballs)

# The node. kubelet refuses a loopback node IP and this kernel has no dummy
# driver, so the node address sits on a bridge without ports that up.sh makes.
# kube-apiserver and kubelet bind to it; pods reach the API through the
# `kubernetes` Service (or directly: vecnetd routes what is not a pod to the
# host).
NODE_NAME=vecnet-node
NODE_IFACE=k8snode0
NODE_IP=10.245.0.1
POD_CIDR=10.244.0.0/16      # the IPPool's CIDR: vecnetd's pod prefix, kube-proxy's clusterCIDR
POOL_BLOCK_SIZE=26
SVC_CIDR=10.96.0.0/16
KUBE_SVC_IP=10.96.0.1
DNS_IP=10.96.0.10           # no DNS server runs; pods get it as nameserver only (never the host's)
ETCD_PORT=12379             # not etcd's default 2379/2380: leave those to anything else on the machine
ETCD_PEER_PORT=12380
PAUSE_IMAGE=k8snode.local/pause:3.10
TEST_IMAGE=k8snode.local/busybox:1.35

# vecnet, placed as its DaemonSet would place it.
VECNET_RUN=/run/vecnet                      # vecnetd.sock and cni.sock (hostPath /run/vecnet in a DaemonSet)
VECNETD_SOCK=$VECNET_RUN/vecnetd.sock
VECNET_CNI_SOCK=$VECNET_RUN/cni.sock        # = agentSocket of deploy/cni/10-vecnet.conflist
VECNET_HEALTH=127.0.0.1:19099               # agent /livez /readyz (not the default 9099: free for other runs)
VECNET_METRICS=127.0.0.1:19091
VECNET_HOST_IF=vecnet0                      # vecnetd's host tun (its default --host-interface)
# VECNET_UPLINK: what vecnetd attaches as uplink. "auto" (default): nothing when
# vecnetd makes its host tun from the pod prefixes alone, else NODE_IFACE with
# the tap driver, only so that vecnetd makes the host tun (see up.sh).
# "none" never attaches one; NAME:DRIVER attaches that.
VECNET_UPLINK=${VECNET_UPLINK:-auto}

KUBE_PROXY=${KUBE_PROXY:-1}                 # 0: no kube-proxy (Service checks then are skipped)
# 1: kube-proxy masqueradeAll, a workaround that makes ClusterIP work from
# pods (replies then return through the host) at the cost of client addresses.
KUBE_PROXY_MASQUERADE_ALL=${KUBE_PROXY_MASQUERADE_ALL:-0}

CNI_BIN_DIR=/opt/cni/bin
CNI_CONF_DIR=/etc/cni/net.d
# containerd uses only the first configuration of CNI_CONF_DIR in name order
# (max_conf_num = 1): up.sh refuses to start when another one sorts first.
CNI_CONFLIST=$CNI_CONF_DIR/10-vecnet.conflist
CRI_SOCK=/run/containerd/containerd.sock

export PATH=$BIN:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export KUBECONFIG=$CONF/admin.kubeconfig

log() { echo "[k8s-node $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
pid_alive() { [[ -f $RUN/$1.pid ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
# waitfor DESC SECONDS CMD...: retries CMD once a second.
waitfor() {
  local d=$1 t=$2 i
  shift 2
  for ((i = 0; i < t; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  log "timeout after ${t}s waiting for $d"
  return 1
}
# Every component, in start order (down.sh stops them in reverse).
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler vecnetd vecnet-agent kubelet kube-proxy)
