# Two commands on a fresh machine: `make demo` and `make test` (each sets up .venv first).
# pip, not uv: uv does not see this machine's local torch wheels (DESIGN 6.2).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= all,dev
DEMO_DIR ?= demo
STAMP := $(VENV)/.mirada-installed

.PHONY: demo test lint bench setup clean argilla chromium

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/mirada run configs/pipeline.yaml --var root=$(DEMO_DIR)
	@echo "workspace: $(DEMO_DIR)/workspace   prefs datasets: $(DEMO_DIR)/workspace/exports/prefs/"
	@echo "adapter + Model Card: $(DEMO_DIR)/runs/tiny-qwen2_5_vl-dpo/   Space: $(DEMO_DIR)/space/"
	@echo "publish plan (dry run): $(DEMO_DIR)/workspace/exports/publish/   try the UI: $(BIN)/mirada demo \\"
	@echo "  --model $(DEMO_DIR)/models/tiny-qwen2_5_vl --adapter $(DEMO_DIR)/runs/tiny-qwen2_5_vl-dpo --workspace $(DEMO_DIR)/workspace"

# The browser tests drive Debian's chromium through playwright (never `playwright install`).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@test -x $(CHROMIUM) || { echo "installing Debian chromium for the browser tests"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_collect.py
	$(BIN)/python tests/benchmarks/bench_draft.py
	$(BIN)/python tests/benchmarks/bench_judge.py
	$(BIN)/python tests/benchmarks/bench_eval.py
	$(BIN)/python tests/benchmarks/bench_generate.py  # on a GPU machine: add --real-arch
	$(BIN)/python tests/benchmarks/bench_train.py --tiny  # on a GPU machine: drop --tiny

# A real argilla-server on 127.0.0.1:6900 (own venv in .cache/, built once) to try the review UI by hand.
argilla:
	$(PYTHON) scripts/argilla_server.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache
