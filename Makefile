# `make test` and `make demo` bootstrap .venv themselves: torch first (a CPU build unless you
# override TORCH, e.g. `make test TORCH=torch` or install your CUDA torch into .venv first),
# then this project with its dev and sweep (Ray) extras. A second call installs nothing.
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
	$(PY) -m pip install --quiet -e ".[dev,sweep]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# the suite in TEST_WORKERS processes (pytest-xdist; 2 for this project's 2-core machines),
# each with cores / workers torch threads, at most 2 (tests/conftest.py)
TEST_WORKERS ?= 2

test: $(STAMP) lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# push (MuJoCo), 3 tasks, hnet and finetune at a reduced quick schedule; report in
# runs/demo/REPORT.md, videos in videos/demo/. A finished demo is not re-run: delete runs/demo.
DEMO_SET := --set mpc_steps=600 --set train_iters=500 --set eval_episodes=4

demo: $(STAMP)
	$(PY) launch/push.py --methods hnet,finetune --seeds 0 --profile quick $(DEMO_SET) \
		--video --out runs/demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
