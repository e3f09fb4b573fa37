# Two commands for a fresh machine: `make demo` and `make test`.
# Both create a virtual environment in .venv and install the project into it.

PYTHON ?= python3
VENV ?= .venv
# A CPU build keeps the install small; GPU users: `make TORCH=torch` or install torch first.
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flamefit-installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/flamefit demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_renderer.py --quick

clean:
	rm -rf $(VENV) out .pytest_cache
