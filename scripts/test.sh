#!/usr/bin/env bash
# The whole test suite: what `make test` and CI run. As root it installs the
# packages the tests need and mounts tracefs; in CI (CI=true) a test whose
# prerequisite is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

if [ "$(id -u)" -eq 0 ]; then
  scripts/deps.sh test
else
  echo "mciv: not root: tests that need eBPF, namespaces or packages will be skipped" >&2
fi
if [ "${CI:-}" = "true" ]; then
  export MCIV_NO_SKIP=1
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change: $bad" >&2; exit 1; fi

echo "== go vet"
go vet ./...

echo "== generated eBPF bindings are current"
scripts/check-generate.sh

echo "== go test"
go test -count=1 -race -timeout 20m ./...

# A count, not a duration: with -fuzztime 5s the fuzzer itself sometimes
# ends a passing target with "context deadline exceeded" when the time runs
# out while a worker is busy (seen on FuzzDecode).
echo "== fuzz (brief: each target 10000 inputs beyond its committed seeds; make fuzz runs longer)"
for t in $(grep -v '^#' scripts/fuzz-targets); do
  go test -run '^$' -fuzz "^${t##*:}\$" -fuzztime 10000x "./${t%%:*}"
done

echo "== deploy/ (helm chart, systemd units, capabilities, dashboard)"
deploy/validate.sh
