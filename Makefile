# mciv: `make run` runs everything on this host; `make test` runs the tests.
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
BIN     ?= ./mciv
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
ARGS    ?=

.PHONY: run build test generate check-generate bench bench-latency demo deps fmt vet validate-deploy install fuzz

## build: compile the one binary (no clang needed: bpf2go output is committed)
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/mciv

## run: install what is missing, build, and run `mciv up` on the embedded NATS
run: build
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh run; else echo "mciv: not root: the collector needs root (sudo make run); the other parts run" >&2; fi
	$(BIN) up $(ARGS)

## demo: real retransmits in a private namespace fire an alert, then resolve (root)
demo: build
	scripts/deps.sh run
	$(BIN) demo $(ARGS)

## test: the whole suite, as CI runs it
test:
	scripts/test.sh

## generate: rebuild the eBPF objects and Go bindings from bpf/*.bpf.c
generate:
	scripts/deps.sh generate
	$(GO) generate ./bpf/...

## check-generate: fail if the committed bpf2go output is stale
check-generate:
	scripts/check-generate.sh

## bench: benchmarks, ratios measured side by side in one run
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-latency: fault→notification, mciv vs Prometheus+Alertmanager, side by side (root, ~35 min;
##   ARGS="--skip-typical --quiet 2m" for a short try; see scripts/bench-latency.sh)
bench-latency:
	scripts/bench-latency.sh $(ARGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

## validate-deploy: the deploy/ checks (helm, Kubernetes types, systemd, capabilities, dashboard)
validate-deploy:
	deploy/validate.sh

## install: binary, user mciv, systemd units and example configuration on this host (root)
install: build
	deploy/install.sh

FUZZTIME ?= 1m
## fuzz: every fuzz target for FUZZTIME each
fuzz:
	@for t in $$(grep -v '^#' scripts/fuzz-targets); do \
	  $(GO) test -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*} || exit 1; \
	done
