#!/usr/bin/env bash
# Single-node demo: two pods (network namespaces) talk through vecnetd, then
# the same iperf3 test runs through vecnetd and through the kernel path
# Calico uses on one node, side by side. Everything it creates is removed on
# exit, even on Ctrl-C or failure. Run as root: `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it creates network namespaces and tun devices): sudo make demo" >&2; exit 1; }
bash hack/deps.sh
go build -o bin/ ./cmd/vecnetd ./cmd/vecnetctl

id=$$
SOCK=/tmp/vecnet-demo-$id/vecnetd.sock
NS=(demo-a-$id demo-b-$id kdemo-a-$id kdemo-b-$id kdemo-host-$id)
VECNETD_PID=
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctl() { bin/vecnetctl --socket "$SOCK" "$@"; }
cleanup() {
  set +e
  [[ -n $VECNETD_PID ]] && kill -TERM "$VECNETD_PID" 2>/dev/null && wait "$VECNETD_PID" 2>/dev/null
  for ns in "${NS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "/tmp/vecnet-demo-$id"
}
trap cleanup EXIT

step "starting vecnetd (log: /tmp/vecnet-demo-$id/vecnetd.log)"
mkdir -p "/tmp/vecnet-demo-$id"
bin/vecnetd --socket "$SOCK" --workers 1 >"/tmp/vecnet-demo-$id/vecnetd.log" 2>&1 &
VECNETD_PID=$!
for _ in $(seq 50); do [[ -S $SOCK ]] && break; sleep 0.1; done
[[ -S $SOCK ]] || { cat "/tmp/vecnet-demo-$id/vecnetd.log"; exit 1; }

step "two pods, each a network namespace with a tun interface made by vecnetd"
ip netns add "${NS[0]}"; ip netns add "${NS[1]}"
A=$(ctl interface create tun --netns "${NS[0]}" --host-if eth0 --host-addr 10.80.0.2/32,fd80::2/128)
B=$(ctl interface create tun --netns "${NS[1]}" --host-if eth0 --host-addr 10.80.0.3/32,fd80::3/128)
echo "pod a: $A, pod b: $B"
ctl show interfaces
ctl show routes

step "ping, IPv4 and IPv6"
ip netns exec "${NS[0]}" ping -c 3 -i 0.2 10.80.0.3
ip netns exec "${NS[0]}" ping -c 3 -i 0.2 fd80::3

step "a packet's path through the graph (vecnetctl trace)"
ctl trace add 1
ip netns exec "${NS[1]}" ping -c 1 10.80.0.2 >/dev/null
ctl trace show

step "kernel baseline: the same two pods on veths to a routing namespace (proxy ARP, /32 routes)"
H=${NS[4]}
ip netns add "$H"; ip netns add "${NS[2]}"; ip netns add "${NS[3]}"
ip netns exec "$H" sysctl -qw net.ipv4.ip_forward=1
ip -n "$H" link set lo up
ip -n "$H" route add 169.254.1.1/32 dev lo
i=0
for p in "${NS[2]}" "${NS[3]}"; do
  addr=10.81.0.$((i + 2))
  ip link add eth0 netns "$p" type veth peer name cali$i netns "$H"
  ip -n "$p" addr add $addr/32 dev eth0
  ip -n "$p" link set eth0 up
  ip -n "$p" route add 169.254.1.1 dev eth0 scope link
  ip -n "$p" route add default via 169.254.1.1 dev eth0
  ip netns exec "$H" sysctl -qw net.ipv4.conf.cali$i.proxy_arp=1
  ip -n "$H" link set cali$i up
  ip -n "$H" route add $addr/32 dev cali$i
  i=$((i + 1))
done

iperf() { # ns-client ns-server addr
  ip netns exec "$2" iperf3 -s -1 -D -p 5299 >/dev/null
  sleep 0.3
  ip netns exec "$1" iperf3 -c "$3" -p 5299 -t "${DEMO_SECONDS:-5}" -J |
    sed -n 's/.*"bits_per_second":[[:space:]]*\([0-9.e+]*\).*/\1/p' | tail -1
}
step "iperf3, one TCP stream, ${DEMO_SECONDS:-5} s each"
v=$(iperf "${NS[0]}" "${NS[1]}" 10.80.0.3)
k=$(iperf "${NS[2]}" "${NS[3]}" 10.81.0.3)
awk -v v="$v" -v k="$k" 'BEGIN { printf "vecnet %.2f Gbit/s   kernel %.2f Gbit/s   vecnet/kernel %.2f\n", v/1e9, k/1e9, v/k }'

step "per-node runtime (like vppctl show runtime)"
ctl show runtime
step "done: vecnetd removes its interfaces on exit"
