# Two commands for a newcomer: `make demo` and `make test`. Each builds .venv by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BROWSER_STAMP := $(VENV)/.browser
BENCH_STAMP := $(VENV)/.bench
RAY_STAMP := $(VENV)/.ray

.PHONY: demo test test-slow lint typecheck bench bench-ann bench-load bench-calibration bench-dedup bench-hubness bench-migration bench-latency bench-filters bench-multivector bench-sharded eval-scifact clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The sharded tests start a local Ray cluster; Ray is an extra, installed here for them.
# A failed install stops `make test` with the reason: those tests would otherwise skip
# unseen (the stamp is only written once the install succeeded, so the next run retries).
$(RAY_STAMP): $(STAMP)
	@$(BIN)/python -m pip install --quiet -e '.[dev,ray]' || { \
		echo "make: could not install the ray extra (pip install -e '.[dev,ray]' failed," \
			"see above); the sharded tests need it, so make stops here" >&2; exit 1; }
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The browser test drives Debian's Chromium; install it once if it is missing and we may.
# Without root or network the browser test skips and says why; nothing else depends on it.
$(BROWSER_STAMP): | $(STAMP)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing chromium and chromium-driver for the browser test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver >/dev/null) || echo "could not install chromium"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
		(sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver >/dev/null) || echo "could not install chromium"; \
	else echo "chromium is not installed and cannot be: the browser test will skip"; fi
	touch $@

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/simsearch

# The suite runs in JOBS worker processes (pytest-xdist), a test file to a worker: the
# files that share a module fixture (a server, a Ray cluster) keep it, and the SIGKILL and
# server tests, which mostly wait on other processes, overlap with the rest.
JOBS ?= 2

test: lint typecheck $(BROWSER_STAMP) $(RAY_STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile

test-slow: $(STAMP) $(RAY_STAMP)
	$(BIN)/python -m pytest -q -m slow -n $(JOBS) --dist loadfile

eval-scifact: $(STAMP)
	$(BIN)/simsearch eval .data/scifact --beir ../shared/datasets/scifact --split test

bench: $(BENCH_STAMP)
	$(BIN)/python bench/bench_foundation.py

bench-calibration: $(BENCH_STAMP)
	$(BIN)/python bench/bench_calibration.py
	$(BIN)/python bench/bench_calibration_digits.py
	$(BIN)/python bench/bench_calibration_labels.py

bench-dedup: $(BENCH_STAMP)
	$(BIN)/python bench/bench_dedup.py

bench-hubness: $(BENCH_STAMP)
	$(BIN)/python bench/bench_hubness.py

# MiniLM <-> static-64 both ways; e5 (an hour of embedding) is run by hand, see the README.
bench-migration: $(BENCH_STAMP)
	$(BIN)/python bench/bench_migration.py --old minilm-l6-v2-int8 --new static-64
	$(BIN)/python bench/bench_migration.py --old static-64 --new minilm-l6-v2-int8
	$(BIN)/python bench/bench_migration_ceiling.py --old minilm-l6-v2-int8 --new static-64
	$(BIN)/python bench/bench_migration_ceiling.py --old static-64 --new minilm-l6-v2-int8

# Dense, lexical and hybrid on SciFact and arcd beside bm25s; lexical index choice (FTS5, bm25s, tantivy).
bench-hybrid: $(BENCH_STAMP)
	$(BIN)/python bench/bench_lexical_choice.py
	PYTHONPATH=bench $(BIN)/python bench/bench_hybrid.py

# Multi-vector (MaxSim) search on SciFact and arcd; token vectors cached under .data/tokens.
bench-multivector: $(BENCH_STAMP)
	$(BIN)/python bench/bench_multivector.py

bench-ann: $(BENCH_STAMP)
	$(BIN)/python bench/bench_ann.py

# One query per call against hnswlib and FAISS, the HTTP server, two threads, 100k-1M items.
bench-latency: $(BENCH_STAMP)
	$(BIN)/python bench/bench_latency.py

bench-filters: $(BENCH_STAMP)
	$(BIN)/python bench/bench_filters.py

# 1, 2 and 3 shards on a local 3-node Ray cluster beside one plain collection; scaling model.
bench-sharded: $(BENCH_STAMP) $(RAY_STAMP)
	$(BIN)/python bench/bench_sharded.py

bench-load: $(BENCH_STAMP)
	$(BIN)/python bench/bench_server_load.py

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
