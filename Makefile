# caddy-k8s-router. Run `make help` for the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

BIN_DIR := $(CURDIR)/bin
GO ?= go
# Packages under test: everything but the pinned tool modules (own go.mod).
PKGS := ./...
# Flags for `make test`. The race detector covers every test, end-to-end too.
TEST_FLAGS ?= -race -count=1 -timeout=30m
# How long each fuzz target runs in `make fuzz`.
FUZZ_TIME ?= 30s
# Fuzz targets as package:Function. `make test` runs their seed corpora.
FUZZ_TARGETS := routing:FuzzParsePort routing:FuzzHost webhook:FuzzAdmissionDecode
# Which benchmarks `make bench` runs (a regexp), and extra `go test` flags.
# The scenarios in test/bench run once each (-benchtime=1x) because one
# iteration is a whole scenario; the micro-benchmarks of the other packages
# run for Go's default benchmark time.
BENCH ?= .
BENCH_FLAGS ?= -timeout=90m

export PATH := $(BIN_DIR):$(PATH)

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## Build the pinned kube-apiserver, kube-controller-manager, kubectl, etcd and caddy into bin/ (skips what is up to date).
	@hack/build-tools.sh

.PHONY: build
build: ## Build the router binary into bin/router.
	CGO_ENABLED=0 $(GO) build -o $(BIN_DIR)/router ./cmd/router

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet $(PKGS)

.PHONY: test
test: tools vet ## Build what bin/ lacks, then run every unit, integration and end-to-end test (fuzz seed corpora included).
	$(GO) test $(TEST_FLAGS) $(PKGS)

.PHONY: fuzz
fuzz: ## Fuzz each target in FUZZ_TARGETS for FUZZ_TIME (default 30s each).
	@for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; name=$${target##*:}; \
		echo "fuzzing $$name in ./$$pkg for $(FUZZ_TIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZ_TIME) "./$$pkg"; \
	done

.PHONY: bench
bench: tools ## Run the benchmarks against the test bed (never part of `make test`); docs/BENCHMARKS.md records them.
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCH_FLAGS) $$($(GO) list $(PKGS) | grep -v '/test/bench$$')
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime=1x $(BENCH_FLAGS) ./test/bench

.PHONY: demo
demo: tools build ## Start a local control plane, Caddy, the router and three sample workspaces; Ctrl-C stops it all.
	$(GO) build -o $(BIN_DIR)/demo ./hack/demo
	$(BIN_DIR)/demo --router $(BIN_DIR)/router

# --- install targets (manifests/, certs/, hack/certgen) ---------------------
# Where `make deploy` applies from: certs/ (the base with the webhook
# certificate from `make certs`) or manifests/cert-manager (the base with a
# certificate from cert-manager).
DEPLOY_DIR ?= certs
# The kubectl that `make deploy` runs: the first on PATH, so bin/kubectl when
# `make tools` built it. Point it at your own, e.g. KUBECTL=/usr/local/bin/kubectl.
KUBECTL ?= kubectl

.PHONY: certs
certs: ## Write a CA, the webhook's serving certificate and its caBundle patch into certs/ (clusters without cert-manager).
	$(GO) run ./hack/certgen -out certs

.PHONY: deploy
deploy: ## Apply the manifests to the current kubectl context: certs/ by default, or DEPLOY_DIR=manifests/cert-manager.
	@if [[ "$(DEPLOY_DIR)" == certs && ! -f certs/tls.crt ]]; then \
		echo "deploy: certs/tls.crt is missing: run 'make certs' first, or use DEPLOY_DIR=manifests/cert-manager" >&2; \
		exit 1; \
	fi
	$(KUBECTL) apply -k $(DEPLOY_DIR)

.PHONY: clean
clean: ## Remove bin/.
	rm -rf $(BIN_DIR)
