# zkscale: the two commands the README opens with are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
BEDDIR := tests/bed
# BED=node: the bed with a real node (kubelet, containerd, kube-proxy, CoreDNS; tests/bed/node).
BED ?=
ifneq ($(filter-out node,$(BED)),)
$(error BED=$(BED): use BED=node for the node bed, or leave BED unset for the simulated one)
endif
UP_SCRIPT := $(BEDDIR)/$(if $(BED),node/up.sh,up.sh)
DOWN_SCRIPT := $(BEDDIR)/$(if $(BED),node/down.sh,down.sh)

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

deps: ## install everything the tests need (cached in ~/.cache/zkscale)
	$(BEDDIR)/install.sh all
	@rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt

build: ## build kubectl-zkscale (release)
	$(CARGO) build --release --bin kubectl-zkscale

lint: deps ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: deps ## unit, property and real-ZooKeeper tests (no cluster)
	$(CARGO) test --workspace -- --skip e2e_

e2e: testbed-up ## end-to-end tests on the test bed (serial: each ensemble is several JVMs)
	$(CARGO) test --test 'e2e_*' -- --test-threads=1

test: ## everything CI runs: lint, unit + real ZooKeeper, e2e on a fresh test bed, then bed down
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) testbed-down
	$(MAKE) e2e; rc=$$?; $(MAKE) testbed-down; exit $$rc

testbed-up: deps ## start the local control plane + kwok + pod runner (BED=node: a real node); last line: KUBECONFIG=...
	@$(UP_SCRIPT)

testbed-down: ## stop the test bed; leaves no process, port or state behind
	@$(DOWN_SCRIPT)

demo: testbed-up ## the main job on the local test bed: 1 member with data → 3, nothing lost
	tests/demo.sh

bench: testbed-up ## benchmarks that print figures (nothing is asserted about time)
	$(BEDDIR)/install.sh kustomize
	$(CARGO) bench --bench post_render
	$(CARGO) bench --bench scale

faults: testbed-up ## every mid-step fault e2e (make test runs one of them)
	$(CARGO) test --test e2e_faults -- --ignored --test-threads=1

zk-divergence: deps ## real ZooKeeper 3.9.3 leaving a follower diverged (ZOOKEEPER-4925), and the gate naming it (no bed)
	$(CARGO) test --test zk_divergence -- --ignored --nocapture

migrate: testbed-up ## every migration e2e, the 5-member move included (make test runs 3 of them)
	$(CARGO) test --test e2e_migrate -- --include-ignored --test-threads=1

dist: ## release artifacts for this platform in dist/: archive, sha256, krew manifest, Helm plugin package
	HELM=$(HELM4) packaging/dist.sh

fuzz: ## libFuzzer on the parsers of untrusted text (nightly; FUZZ_SECONDS per target, default 60)
	tests/fuzz.sh

PREFIX ?= $(HOME)/.local
HELM4 ?= $${ZKSCALE_CACHE:-$$HOME/.cache/zkscale}/helm4/helm
HELM ?= helm
RELEASE_BIN = $${CARGO_TARGET_DIR:-target}/release/kubectl-zkscale
# `helm plugin install <dir>` links the directory into $$HELM_DATA_HOME/plugins, so it must stay.
PLUGIN_DIR = $(PREFIX)/share/zkscale/helm-plugin

install: build ## kubectl-zkscale on PATH ($(PREFIX)/bin) and the Helm 4 plugin `zkscale` (HELM=...)
	install -D -m 0755 $(RELEASE_BIN) $(PREFIX)/bin/kubectl-zkscale
	ln -sf kubectl-zkscale $(PREFIX)/bin/kubectl_complete-zkscale   # kubectl zkscale <TAB> (kubectl 1.26+)
	rm -rf $(PLUGIN_DIR)
	install -D -m 0644 plugin.yaml $(PLUGIN_DIR)/plugin.yaml
	install -D -m 0755 scripts/helm-post-render.sh $(PLUGIN_DIR)/scripts/helm-post-render.sh
	install -D -m 0755 $(RELEASE_BIN) $(PLUGIN_DIR)/bin/kubectl-zkscale
	@if $(HELM) version --template '{{.Version}}' 2>/dev/null | grep -q '^v[4-9]'; then \
	  $(HELM) plugin uninstall zkscale >/dev/null 2>&1 || true; \
	  $(HELM) plugin install $(PLUGIN_DIR); \
	  echo "helm upgrade ... --post-renderer zkscale"; \
	else \
	  echo "no Helm 4 plugin installed ($(HELM) is not Helm 4); with Helm 3 use:"; \
	  echo "  helm upgrade ... --post-renderer kubectl-zkscale --post-renderer-args post-render"; \
	fi

.PHONY: help deps build lint unit e2e test testbed-up testbed-down demo bench faults zk-divergence migrate dist fuzz install
