#!/usr/bin/env bash
# Fails when the committed bpf2go output differs from what `make generate`
# produces from the C sources. Needs clang; without it, says so and passes
# only outside CI.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang >/dev/null; then
  if [ "${CI:-}" = "true" ]; then echo "clang missing in CI" >&2; exit 1; fi
  echo "clang not installed: skipping the generated-code check" >&2
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a bpf "$tmp/before"
go generate ./bpf/...
if ! diff -r "$tmp/before" bpf >/dev/null; then
  echo "bpf/: the committed generated files are stale; run 'make generate' and commit:" >&2
  diff -rq "$tmp/before" bpf >&2 || true
  rm -rf bpf && cp -a "$tmp/before" bpf
  exit 1
fi
