#!/usr/bin/env bash
# Installs the Debian packages mciv needs, only those that are missing,
# with one `apt-get update` at most. Usage: scripts/deps.sh run|test|generate|bench
# (bench: what `make bench-latency` compares mciv with: Prometheus, node_exporter
# and Alertmanager from Debian)
set -euo pipefail

want=()
case "${1:-run}" in
  run)      want=(iproute2 nftables espeak-ng sox) ;;
  generate) want=(clang llvm libbpf-dev bpftool) ;;
  test)     want=(iproute2 nftables clang llvm libbpf-dev bpftool
                  espeak-ng sox libsox-fmt-mp3 opus-tools pocketsphinx pocketsphinx-en-us
                  postgresql-15 postgresql-client-15 patroni python3-etcd etcd-server
                  mariadb-server bpftrace) ;;
  bench)    want=(iproute2 nftables prometheus prometheus-node-exporter prometheus-alertmanager) ;;
  *) echo "usage: $0 run|test|generate|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "mciv: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "mciv: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# eBPF tracepoints need tracefs.
if [ "$(id -u)" -eq 0 ] && [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || echo "mciv: could not mount tracefs at /sys/kernel/tracing" >&2
fi
