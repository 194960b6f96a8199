#!/usr/bin/env bash
# Validates deploy/: helm lint and template (helm's Go library) of every
# documented variant, strict decoding into the Kubernetes API types,
# systemd-analyze verify of the units, the collector run as an unprivileged
# user with the unit's capabilities, and the Grafana dashboard against a
# live `mciv up`. As root it installs what the tests need; in CI
# (CI=true) a missing prerequisite fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
if [ "${CI:-}" = "true" ]; then export MCIV_NO_SKIP=1; fi

if [ "$(id -u)" -eq 0 ]; then
  missing=()
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v setpriv >/dev/null || missing+=(util-linux)
  command -v useradd >/dev/null || missing+=(passwd)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  if ! grep -qs ' /sys/kernel/tracing tracefs ' /proc/self/mounts; then
    mount -t tracefs tracefs /sys/kernel/tracing
  fi
else
  echo "deploy/validate: not root: the capability test will be skipped" >&2
fi

echo "== deploy/validate: gofmt, vet, tests"
bad=$(gofmt -l deploy/validate)
if [ -n "$bad" ]; then echo "gofmt would change: $bad" >&2; exit 1; fi
(cd deploy/validate && go vet ./... && go test -count=1 -timeout 10m ./...)
