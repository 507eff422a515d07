# cwii for Kubewarden. `make run` shows the policy on the bundled pods; `make test` runs
# every test. KWCTL selects the runner: the bundled kwrun (default) or the real kwctl.
SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
KWRUN := $(CURDIR)/target/tool/kwrun
KWCTL ?= $(KWRUN)
SOURCES := $(shell find src -name '*.rs') build.rs Cargo.toml Cargo.lock
PROPTEST_CASES ?= 10000

.PHONY: all run test tools unit-tests wasm-unit-tests e2e-tests lint fmt clean kwrun wasm-target \
        bench bench-cost proptest fuzz push

all: annotated-policy.wasm

wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

policy.wasm: $(SOURCES) | wasm-target
	$(CARGO) build --target $(WASM_TARGET) --release -p cwii-kubewarden
	cp target/$(WASM_TARGET)/release/cwii_kubewarden.wasm policy.wasm

# kwrun is rebuilt only when its sources change; the real kwctl needs nothing built.
$(KWRUN): $(shell find kwrun/src -name '*.rs') kwrun/Cargo.toml Cargo.lock
	$(CARGO) build -p kwrun --profile tool

kwrun: $(KWRUN)

annotated-policy.wasm: policy.wasm policy-metadata.yml README.md $(if $(filter $(KWRUN),$(KWCTL)),$(KWRUN))
	$(KWCTL) annotate -m policy-metadata.yml -u README.md -o annotated-policy.wasm policy.wasm

run: annotated-policy.wasm
	@scripts/run-pods.sh "$(KWCTL)" annotated-policy.wasm

# `make test` works on a fresh machine: the tools step installs only what is missing
# (bats and jq from apt, the wasm target, clippy/rustfmt, wasmtime-cli from crates.io).
test: tools lint unit-tests wasm-unit-tests e2e-tests

tools:
	@.ci/install-tools

unit-tests:
	$(CARGO) test --workspace --profile tool

# The core's unit tests compiled to the target the cluster runs, inside wasmtime. The test
# module imports waPC's host functions; the tests never call them (they use the in-memory
# lookup), so wasmtime stands in trapping stubs.
WASM_TEST_RUNNER := wasmtime run -W unknown-imports-trap=y -W unknown-exports-allow=y --dir=.
wasm-unit-tests: | wasm-target
	@command -v wasmtime >/dev/null || { echo "wasmtime not found: run .ci/install-tools or cargo install wasmtime-cli --version 48.0.8 --locked"; exit 1; }
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(WASM_TEST_RUNNER)" $(CARGO) test -p cwii-kubewarden --lib --target $(WASM_TARGET) --profile tool

e2e-tests: annotated-policy.wasm
	KWCTL="$(KWCTL)" bats e2e.bats e2e-native.bats

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --profile tool --all-targets -- -D warnings
	$(CARGO) clippy -p cwii-kubewarden --target $(WASM_TARGET) --release -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -f policy.wasm annotated-policy.wasm

# Property tests of SPEC §5 (nothing lost, idempotent, oracle precedence, valid output).
proptest:
	PROPTEST_CASES=$(PROPTEST_CASES) $(CARGO) test -p cwii-kubewarden --profile tool --test properties -- --nocapture

floor.wasm: floor/src/lib.rs floor/Cargo.toml Cargo.toml Cargo.lock | wasm-target
	$(CARGO) build -p floor --target $(WASM_TARGET) --release
	cp target/$(WASM_TARGET)/release/floor.wasm floor.wasm

# Policy vs the floor giving the same answer and vs the echo floor, fresh and warm
# instances, on the scenarios in bench/, then the cost model (see README, Performance).
# BENCH_ROUNDS, BENCH_SECONDS, BENCH_ITERATIONS and BENCH_WARMUP tune the effort.
bench: annotated-policy.wasm floor.wasm $(KWRUN)
	@scripts/bench.sh "$(KWRUN)" annotated-policy.wasm floor.wasm table cost

# The cost model alone: µs per evaluation against containers and lookups.
bench-cost: annotated-policy.wasm floor.wasm $(KWRUN)
	@scripts/bench.sh "$(KWRUN)" annotated-policy.wasm floor.wasm cost

# Publishes annotated-policy.wasm to an OCI registry. Needs the real kwctl (kwrun cannot push)
# and a registry login (docker login / ~/.docker/config.json):
#   make push KWCTL=kwctl
#   make push KWCTL=kwctl REGISTRY_REF=registry://registry.example.com/policies/cwii:v0.1.0
# VERSION is the root package's version in Cargo.toml.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
REGISTRY_REF ?= registry://ghcr.io/cwii-dev/policies/cwii:v$(VERSION)
push: $(if $(filter $(KWRUN),$(KWCTL)),,annotated-policy.wasm)
	@if [ "$(KWCTL)" = "$(KWRUN)" ]; then \
	  echo "make push needs the real kwctl (kwrun has no push): make push KWCTL=kwctl [REGISTRY_REF=registry://HOST/PATH:TAG]" >&2; exit 2; fi
	@command -v "$(KWCTL)" >/dev/null || { echo "make push: $(KWCTL) not found; install kwctl from https://github.com/kubewarden/kubewarden-controller/releases" >&2; exit 2; }
	$(KWCTL) push annotated-policy.wasm $(REGISTRY_REF)
