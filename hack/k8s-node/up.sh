#!/usr/bin/env bash
# Brings up a real single-node Kubernetes on this machine with vecnet as its
# only CNI (run as root; down.sh undoes it):
#
#   containerd + runc (Debian) -> etcd -> kube-apiserver -> controller-manager,
#   scheduler -> kubelet, kube-proxy (node NotReady: no CNI configuration yet)
#   -> vecnet's CRDs and an IPPool -> vecnetd, vecnet-agent on the host as
#   their DaemonSet pod would run them (host network, sockets in /run/vecnet)
#   -> the vecnet plugin and its conflist -> node Ready.
#
# Every process runs in its own session with its PID in $RUN and its log in
# $LOGS (common.sh). The cluster's state (etcd) is fresh on every start;
# builds, PKI and images are kept. Settings: common.sh (VECNET_UPLINK,
# KUBE_PROXY).
#
# What this machine needed (any test of a real node here needs the same):
#   - CAP_SYS_RESOURCE is withheld even from root: containerd needs
#     restrict_oom_score_adj, else runc fails every sandbox with "can't get
#     final child's PID from pipe" (the pause container asks for -998).
#   - cgroup v1 only: kubelet >= 1.35 refuses it unless failCgroupV1: false.
#   - containerd 1.6 has no RuntimeConfig CRI call: kubelet then takes the
#     cgroup driver (cgroupfs, no systemd here) from its own configuration.
#   - kubelet rejects a loopback node IP and the kernel has no dummy driver:
#     the node IP sits on a bridge without ports (NODE_IFACE).
#   - No registry: images are imported with ctr, pods use
#     imagePullPolicy: Never, and image GC is off (nothing could re-pull).
set -euo pipefail
T0=$(date +%s)
source "$(dirname "$0")/common.sh"

[[ $(id -u) -eq 0 ]] || die "run as root (it starts containerd, kubelet and vecnetd)"
for c in "${COMPONENTS[@]}"; do
  pid_alive "$c" && die "$c is already running (pid $(cat "$RUN/$c.pid")): run hack/k8s-node/down.sh first"
done
# vecnetd's devices vanish with their owner: an existing host tun or a live
# socket means another vecnetd runs on the host, and ours would fail.
ip link show "$VECNET_HOST_IF" >/dev/null 2>&1 && die "$VECNET_HOST_IF exists: another vecnetd runs on the host; stop it first"
[[ -S $VECNETD_SOCK ]] && "$BIN/vecnetctl" --socket "$VECNETD_SOCK" show interfaces >/dev/null 2>&1 &&
  die "a vecnetd not started by hack/k8s-node serves $VECNETD_SOCK; stop it first"
mkdir -p "$PKI" "$CONF" "$RUN" "$LOGS" "$STATE"
for c in "${COMPONENTS[@]}"; do rm -f "$LOGS/$c.log"; done   # no log of an earlier run is taken for this one's

# ---------------------------------------------------------------- packages
# containerd 1.6 and runc 1.1 (Debian 12), iptables for kube-proxy, nftables
# for the forward guard, Debian's CNI plugins for `loopback` (containerd sets
# up the pod's lo with it), busybox-static for the test image, gcc for pause.
PKGS=(containerd runc iptables nftables conntrack containernetworking-plugins busybox-static openssl gcc libc6-dev curl iproute2 iputils-ping util-linux)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$LOGS/apt.log" 2>&1 ||
    { tail -20 "$LOGS/apt.log" >&2; die "apt-get failed"; }
fi
# Debian's package would start containerd from its init script on a machine
# with one; this one runs its own instance (no systemd here). Refuse to share.
[[ -S $CRI_SOCK ]] && ctr --address "$CRI_SOCK" version >/dev/null 2>&1 &&
  die "a containerd not started by hack/k8s-node serves $CRI_SOCK; stop it first"
command -v go >/dev/null || die "Go is required (this machine image ships it in /usr/local/go)"
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing (modprobe tun)"

# ---------------------------------------------------------------- builds
bash "$K8SNODE_SRC/build.sh"

# ---------------------------------------------------------------- PKI, kubeconfigs
# Static tokens keep it short: one per identity, groups as kubeadm gives them.
if [[ ! -f $PKI/ca.crt ]]; then
  log "generating the PKI in $PKI"
  (
    cd "$PKI"
    openssl genrsa -out ca.key 2048 2>/dev/null
    openssl req -x509 -new -nodes -key ca.key -subj "/CN=vecnet-k8s-node-ca" -days 3650 -out ca.crt
    sign() { # NAME SUBJECT EXTENSIONS
      openssl genrsa -out "$1.key" 2048 2>/dev/null
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
      printf '%b\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    }
    sign apiserver "/CN=kube-apiserver" "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$KUBE_SVC_IP"
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    tok() { openssl rand -hex 16; }
    {
      echo "$(tok),admin,uid-admin,\"system:masters\""
      echo "$(tok),system:node:$NODE_NAME,uid-node,\"system:nodes\""
      echo "$(tok),system:kube-controller-manager,uid-kcm,\"\""
      echo "$(tok),system:kube-scheduler,uid-sched,\"\""
      echo "$(tok),system:kube-proxy,uid-kproxy,\"\""
    } >tokens.csv
    chmod 600 ./*.key tokens.csv
  )
fi
mkkubeconfig() { # FILE USER
  local token
  token=$(grep ",$2," "$PKI/tokens.csv" | cut -d, -f1)
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: k8s-node
  cluster: {certificate-authority: $PKI/ca.crt, server: "https://$NODE_IP:6443"}
users:
- name: "$2"
  user: {token: $token}
contexts:
- name: k8s-node
  context: {cluster: k8s-node, user: "$2"}
current-context: k8s-node
EOF
  chmod 600 "$1"
}
mkkubeconfig "$CONF/admin.kubeconfig" admin
mkkubeconfig "$CONF/kubelet.kubeconfig" "system:node:$NODE_NAME"
mkkubeconfig "$CONF/controller-manager.kubeconfig" system:kube-controller-manager
mkkubeconfig "$CONF/scheduler.kubeconfig" system:kube-scheduler
mkkubeconfig "$CONF/kube-proxy.kubeconfig" system:kube-proxy

# ---------------------------------------------------------------- host networking
# down.sh restores these (kubelet, kube-proxy and this script change some).
SYSCTLS="net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait"
if [[ ! -f $STATE/sysctl.orig ]]; then
  for s in $SYSCTLS; do v=$(sysctl -n "$s" 2>/dev/null) && echo "$s=$v"; done >"$STATE/sysctl.orig"
fi
if ! ip link show "$NODE_IFACE" >/dev/null 2>&1; then
  ip link add "$NODE_IFACE" type bridge   # no ports: it only carries NODE_IP
  ip addr add "$NODE_IP/32" dev "$NODE_IFACE"
  ip link set "$NODE_IFACE" up
fi
# The host forwards pod traffic that vecnetd hands it through its host tun
# (to Services, to other host addresses).
sysctl -qw net.ipv4.ip_forward=1
# Safety net: forwarded packets may only go to the pod CIDR, so pods never
# leave the machine (DNS to the host's nameserver, an unbacked Service IP).
# Traffic of the host itself is not forwarded and not affected.
nft delete table inet k8s_node_guard 2>/dev/null || true
nft -f - <<EOF
table inet k8s_node_guard {
  chain forward {
    type filter hook forward priority -5; policy accept;
    ip daddr $POD_CIDR accept
    counter drop
  }
}
EOF
echo "nameserver $DNS_IP" >"$CONF/resolv.conf" # never hand the host's nameserver to pods

# Directories that down.sh may remove whole because only this node used them.
for d in /var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni; do
  [[ -e $d ]] || grep -qxF "$d" "$STATE/created" 2>/dev/null || echo "$d" >>"$STATE/created"
done

# ---------------------------------------------------------------- CNI (binaries; the conflist comes last)
mkdir -p "$CNI_BIN_DIR" "$CNI_CONF_DIR"
# containerd runs the loopback plugin for every sandbox's lo.
[[ -e $CNI_BIN_DIR/loopback ]] || { cp /usr/lib/cni/loopback "$CNI_BIN_DIR/loopback" && echo "$CNI_BIN_DIR/loopback" >>"$STATE/installed"; }
install -m 0755 "$BIN/vecnet" "$CNI_BIN_DIR/vecnet.tmp" && mv -f "$CNI_BIN_DIR/vecnet.tmp" "$CNI_BIN_DIR/vecnet"
echo "$CNI_BIN_DIR/vecnet" >>"$STATE/installed"
# Ours must be the configuration containerd picks: the first in name order.
first=$(cd "$CNI_CONF_DIR" && shopt -s nullglob && printf '%s\n' *.conf *.conflist *.json | LC_ALL=C sort | head -1)
if [[ -n $first && $first != "$(basename "$CNI_CONFLIST")" ]] && [[ $first < $(basename "$CNI_CONFLIST") ]]; then
  die "$CNI_CONF_DIR/$first sorts before $(basename "$CNI_CONFLIST"): containerd would use it instead of vecnet; move it away"
fi
rm -f "$CNI_CONFLIST"   # the node must not turn Ready before vecnet serves

# ---------------------------------------------------------------- containerd
start() { # NAME CMD...: in the background, in its own session, PID in $RUN
  local name=$1
  shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  log "started $name (pid $!, log $LOGS/$name.log)"
}
cat >"$CONF/containerd.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "$CRI_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # CAP_SYS_RESOURCE is withheld here: a negative oom_score_adj (pause: -998)
  # makes runc fail; clamp pods' oom_score_adj to containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
    # the first configuration only (what every CRI runtime does by default)
    max_conf_num = 1
EOF
start containerd containerd --config "$CONF/containerd.toml"
waitfor containerd 30 ctr --address "$CRI_SOCK" version || die "containerd did not start"
for img in pause busybox; do
  ctr --address "$CRI_SOCK" -n k8s.io images import "$IMAGES/$img.tar" >/dev/null
done

# ---------------------------------------------------------------- control plane
rm -rf "$STATE/etcd" # a fresh cluster every time
start etcd etcd --name k8s-node --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "k8s-node=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "http://127.0.0.1:$((ETCD_PORT + 2))"
waitfor etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health" || die "etcd did not start"

start kube-apiserver kube-apiserver \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=6443 \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$SVC_CIDR" --allow-privileged=true \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP --profiling=false
log "waiting for kube-apiserver (~10-30 s)"
waitfor kube-apiserver 120 kubectl get --raw /readyz || die "kube-apiserver did not become ready"

# No --allocate-node-cidrs: pods take their addresses from vecnet's IPAM
# (IPPools), not from the node's spec.podCIDR.
start kube-controller-manager kube-controller-manager \
  --kubeconfig="$CONF/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CONF/controller-manager.kubeconfig" --authorization-kubeconfig="$CONF/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range="$SVC_CIDR"
start kube-scheduler kube-scheduler \
  --kubeconfig="$CONF/scheduler.kubeconfig" \
  --authentication-kubeconfig="$CONF/scheduler.kubeconfig" --authorization-kubeconfig="$CONF/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false

# ---------------------------------------------------------------- kubelet, kube-proxy
cat >"$CONF/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CRI_SOCK
cgroupDriver: cgroupfs
# this machine has cgroup v1 only
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: $CONF/resolv.conf
serializeImagePulls: false
# local images can never be pulled again: no image GC, tiny eviction thresholds
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
EOF
start kubelet kubelet --config="$CONF/kubelet-config.yaml" --kubeconfig="$CONF/kubelet.kubeconfig" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --root-dir=/var/lib/kubelet --v=2
waitfor "node registration" 90 kubectl get node "$NODE_NAME" || die "kubelet did not register the node (see $LOGS/kubelet.log)"

if [[ $KUBE_PROXY == 1 ]]; then
  cat >"$CONF/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
# KUBE_PROXY_MASQUERADE_ALL=1 SNATs every Service connection to a host
# address, so that replies come back through the host (see smoke.sh).
iptables: {masqueradeAll: $([[ $KUBE_PROXY_MASQUERADE_ALL == 1 ]] && echo true || echo false)}
clientConnection: {kubeconfig: $CONF/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy kube-proxy --config="$CONF/kube-proxy-config.yaml"
fi

# ---------------------------------------------------------------- vecnet
# What a vecnet DaemonSet does on a node: CRDs and pools are applied once per
# cluster; vecnetd and vecnet-agent run in a hostNetwork pod with /run/vecnet
# shared, and the install step puts the plugin and its conflist on the host.
log "applying vecnet's CRDs and the IPPool $POD_CIDR"
kubectl apply -f "$REPO/deploy/crds/" >/dev/null
waitfor "CRDs established" 60 kubectl wait --for=condition=Established crd --all --timeout=5s || die "CRDs not established"
# One node: no encapsulation. natOutgoing off: pods never leave this machine.
kubectl apply -f - >/dev/null <<EOF
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: $POD_CIDR, blockSize: $POOL_BLOCK_SIZE, ipipMode: Never, vxlanMode: Never, natOutgoing: false, nodeSelector: all()}
EOF

mkdir -p "$VECNET_RUN"
start vecnetd vecnetd --socket "$VECNETD_SOCK" --workers 1 --pod-cidrs "$POD_CIDR" --host-interface "$VECNET_HOST_IF"
waitfor vecnetd 30 vecnetctl --socket "$VECNETD_SOCK" show interfaces || die "vecnetd did not start (see $LOGS/vecnetd.log)"

# The host tun (vecnet0) is the host's path to the pods (kubelet probes,
# `kubectl exec` is not affected) and the pods' path to the host (the API,
# Services through kube-proxy). vecnetd makes it with its first uplink; a
# single node has no uplink to give it, so unless this vecnetd makes it from
# the pod prefixes alone, attach the interface holding the node IP. That
# bridge has no ports: nothing ever arrives on it, so the uplink carries no
# traffic and only gets vecnetd to make the host tun (and tells it the node
# address, which it routes to the host).
uplink=$VECNET_UPLINK why="VECNET_UPLINK=$VECNET_UPLINK"
if [[ $uplink == auto ]]; then
  uplink=none
  ip link show "$VECNET_HOST_IF" >/dev/null 2>&1 || uplink=$NODE_IFACE:tap why="vecnetd made no $VECNET_HOST_IF from its pod prefixes"
fi
if [[ $uplink != none ]]; then
  log "attaching uplink $uplink ($why)"
  vecnetctl --socket "$VECNETD_SOCK" uplink add "${uplink%%:*}" --driver "${uplink#*:}" >/dev/null ||
    die "vecnetctl uplink add $uplink failed (see $LOGS/vecnetd.log)"
fi
echo "$uplink" >"$STATE/uplink"

start vecnet-agent vecnet-agent --node-name "$NODE_NAME" --kubeconfig "$CONF/admin.kubeconfig" \
  --vecnetd-socket "$VECNETD_SOCK" --cni-socket "$VECNET_CNI_SOCK" \
  --health-addr "$VECNET_HEALTH" --metrics-addr "$VECNET_METRICS"
waitfor "vecnet-agent /readyz" 60 curl -sf "http://$VECNET_HEALTH/readyz" || die "vecnet-agent not ready (see $LOGS/vecnet-agent.log)"

# The conflist as shipped, with agentSocket pointing at this agent, and the
# cniVersion this containerd can read: containerd 1.x vendors libcni 1.1,
# which knows CNI results up to 1.0.0 and fails every ADD of a 1.1.0 list
# with 'unsupported CNI result version "1.1.0"' (libcni 1.2, in containerd
# 2.0, reads 1.1.0). The vecnet plugin answers in the list's version.
cni_version=$(sed -n 's/.*"cniVersion": *"\([^"]*\)".*/\1/p' "$REPO/deploy/cni/10-vecnet.conflist" | head -1)
containerd_version=$(containerd --version | awk '{print $3}')
if [[ ${containerd_version#v} == 1.* && $cni_version == 1.1.* ]]; then
  log "containerd 1.x reads CNI results up to 1.0.0: installing the conflist with cniVersion 1.0.0 (shipped: $cni_version)"
  cni_version=1.0.0
fi
sed -e "s|\"agentSocket\": *\"[^\"]*\"|\"agentSocket\": \"$VECNET_CNI_SOCK\"|" \
  -e "s|\"cniVersion\": *\"[^\"]*\"|\"cniVersion\": \"$cni_version\"|" "$REPO/deploy/cni/10-vecnet.conflist" >"$CNI_CONFLIST.tmp"
mv -f "$CNI_CONFLIST.tmp" "$CNI_CONFLIST"
echo "$CNI_CONFLIST" >>"$STATE/installed"
log "installed $CNI_CONFLIST; waiting for the node to become Ready"
if ! kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >/dev/null; then
  kubectl describe node "$NODE_NAME" | sed -n '/Conditions:/,/Addresses:/p' >&2
  die "node $NODE_NAME is not Ready (see $LOGS/kubelet.log, $LOGS/containerd.log)"
fi
waitfor "default serviceaccount" 60 kubectl -n default get sa default || die "no default ServiceAccount"
kubectl get nodes -o wide
log "up in $(($(date +%s) - T0))s (uplink: $uplink). kubectl: source hack/k8s-node/env.sh"
