#!/usr/bin/env bash
# make bench-latency: the same real packet-loss fault against mciv (`mciv up`,
# default rules, a fake Slack on loopback) and Prometheus + node_exporter +
# Alertmanager from Debian (fastest and typical settings, a webhook on
# loopback), side by side; prints fault→notification median/min/max and the
# alerts of a quiet period with noise. Root. About 35 minutes by default.
#
# Usage: scripts/bench-latency.sh [--faults N] [--typical-faults N]
#          [--skip-typical] [--skip-prometheus] [--quiet DURATION]
#          [--gap DURATION] [--out FILE] [--batches FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
faults=5 typical="" quiet=10m gap=10s out="" prom=1 batches=""
while [ $# -gt 0 ]; do
  case "$1" in
    --faults)         faults="${2:?--faults needs a number}"; shift 2 ;;
    --typical-faults) typical="${2:?--typical-faults needs a number}"; shift 2 ;;
    --skip-typical)   typical=0; shift ;;
    --skip-prometheus) prom=0; shift ;;
    --quiet)          quiet="${2:?--quiet needs a duration such as 10m or 0}"; shift 2 ;;
    --gap)            gap="${2:?--gap needs a duration}"; shift 2 ;;
    --out)            out="${2:?--out needs a file}"; shift 2 ;;
    --batches)        batches="${2:?--batches needs a file}"; shift 2 ;;
    -h|--help)        usage ;;
    *) echo "bench-latency: unknown argument $1" >&2; usage ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-latency: needs root (network namespaces, nftables, eBPF): sudo make bench-latency" >&2; exit 1; }

scripts/deps.sh run
[ "$prom" = 0 ] || scripts/deps.sh bench
bin="$(mktemp -d)/mciv"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/mciv

MCIV_BENCH_LATENCY=1 MCIV_BENCH_MCIV="$bin" MCIV_BENCH_FAULTS="$faults" \
MCIV_BENCH_TYPICAL_FAULTS="${typical:-$faults}" MCIV_BENCH_QUIET="$quiet" MCIV_BENCH_GAP="$gap" \
MCIV_BENCH_OUT="$out" MCIV_BENCH_PROMETHEUS="$prom" MCIV_BENCH_BATCHES="$batches" \
  go test -count=1 -timeout 3h -run '^TestBenchLatency$' -v ./internal/lab/latbench
