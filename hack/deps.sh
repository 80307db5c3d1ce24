#!/usr/bin/env bash
# Installs what vecnet's tests, benchmarks and demo need on a fresh Debian
# machine (run as root). Idempotent: installs only what is missing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip       || need+=(iproute2)
have ping     || need+=(iputils-ping)
have iperf3   || need+=(iperf3)
have tcpdump  || need+=(tcpdump)
have trafgen  || need+=(netsniff-ng)
have make     || need+=(make)
have bird     || need+=(bird2)
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
have go || { echo "deps: Go is required (https://go.dev/doc/install); this machine image ships it in /usr/local/go" >&2; exit 1; }
[[ -c /dev/net/tun ]] || { echo "deps: /dev/net/tun is missing: load the tun module (modprobe tun)" >&2; exit 1; }
