# `make test` and `make demo` bootstrap .venv themselves: torch first (a CPU build unless you
# override TORCH, e.g. `make test TORCH=torch` or install your CUDA torch into .venv first),
# then this project with its dev extra. A second call installs nothing.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export MUJOCO_GL ?= egl

.PHONY: test demo install lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) launch/synthetic.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
