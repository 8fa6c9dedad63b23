# fengqiao: the two commands are `make run` and `make test`; `make bench` measures.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages the test suite talks to (and the CJK fonts its screenshots are drawn in), installed
# when missing (CI runs as root).
TEST_DEBS := kcat prometheus chromium fonts-noto-cjk

.PHONY: run test bench drill venv test-deps kafka clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

## make run: the whole platform on embedded defaults, fed by the city simulator.
run: venv
	$(BIN)/fengqiao up --simulate

test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

## Apache Kafka for the tests and `fengqiao up --broker kafka`: its jars through Maven (the version
## pinned in deploy/kafka/pom.xml) into ~/.cache/fengqiao, once.
kafka: venv
	@$(BIN)/python -c "from streams.runtime.kraft import jars; print('Apache Kafka:', jars())"

## make test: the layers' import contract, ruff, then unit and integration tests against the real
## broker, the worker and chdb. pytest exits 5 when it collected no test: a failure here, never a pass.
test: venv test-deps kafka
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check .
	@$(BIN)/python -m pytest -q -ra; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

## make bench: throughput against a raw aiokafka baseline, the ClickHouse sink against a bare
## Arrow insert, latency and memory at fixed loads, detection quality over a simulated week;
## each baseline in the same run; results appended to BENCHMARKS.md.
bench: venv
	$(BIN)/fengqiao bench
	$(BIN)/fengqiao bench --broker kafka
	$(BIN)/fengqiao bench --sink
	$(BIN)/fengqiao bench --loads
	$(BIN)/fengqiao bench --rebalance --events 200000
	$(BIN)/fengqiao bench --quality

## make drill: crashes, a store outage, a burst, hostile input, failing webhooks, a broker killed and
## one paused, workers moved, each on three Apache Kafka nodes and accounted against what was sent;
## fails if anything was lost or duplicated.
drill: venv
	$(BIN)/fengqiao drill

clean:
	rm -rf $(VENV) .fengqiao .pytest_cache
