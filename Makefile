# Two commands do all the set-up: `make lab` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# verl is measured from its own source, installed without its dependencies (ray, tensordict,
# transformers < 5.11) into a side folder that lossviz.trainers.verl_agg reads; never into the environment.
VERL_VERSION := 0.9.1
VERL := $(VENV)/verl/.installed-$(VERL_VERSION)
PORT ?= 8888
# Jupyter refuses to run as root without this flag (containers, CI); other users never need it.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test test-fast test-notebooks test-portable test-browser lint format figures benchmarks version-table frameworks-table clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# pip compiles the bytecode on one core; compileall uses every core (about 30 s saved). Like
	# pip, it skips the few files written for other Python versions.
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e ".[dev]"
	$(BIN)/python -c "import compileall, sysconfig; compileall.compile_dir(sysconfig.get_paths()['purelib'], quiet=2, workers=0)"
	touch $(STAMP)

$(VERL): $(STAMP)
	rm -rf $(VENV)/verl
	$(BIN)/python -m pip install --quiet --no-deps --target $(VENV)/verl verl==$(VERL_VERSION)
	touch $(VERL)

lab: $(STAMP) $(VERL)
	cd notebooks && ../$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) $(ROOT_FLAG)

test: $(STAMP) lint test-fast test-notebooks

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Both cores: one test file (and its module fixtures) per worker, so a fixture runs once.
XDIST := -n auto --dist loadfile

test-fast: $(STAMP) $(VERL)
	$(BIN)/pytest -q $(XDIST) -m "not browser" --ignore=notebooks

test-notebooks: $(STAMP) $(VERL)
	$(BIN)/pytest -q $(XDIST) --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks

# The unit tests and every notebook again under other CPU kernels and thread counts (CI runs it too).
test-portable: $(STAMP) $(VERL)
	$(BIN)/python tests/portable.py

test-browser: $(STAMP) $(VERL)
	$(BIN)/pytest -q -m browser tests/browser

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

figures: $(STAMP)
	$(BIN)/python -m lossviz figures figures

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/cross_entropy.py
	$(BIN)/python benchmarks/widget_latency.py
	$(BIN)/python benchmarks/accumulation_latency.py
	$(BIN)/python benchmarks/chat_latency.py
	$(BIN)/python benchmarks/precision_latency.py
	$(BIN)/python benchmarks/rl_latency.py
	$(BIN)/python benchmarks/preference_latency.py
	$(BIN)/python benchmarks/probe_overhead.py
	$(BIN)/python benchmarks/probe_latency.py
	$(BIN)/python benchmarks/rl_experiment_latency.py
	$(BIN)/python benchmarks/browser_latency.py --label after

# Installs each transformers version under ~/.cache/lossviz (pip --target) and measures its Trainer.
version-table: $(STAMP)
	$(BIN)/python -m lossviz version-table

# Runs PyTorch Lightning, accelerate and the transformers Trainer under the probe and rewrites the table.
frameworks-table: $(STAMP)
	$(BIN)/python -m lossviz frameworks-table

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
