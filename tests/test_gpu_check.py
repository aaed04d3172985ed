"""launch/gpu_check.sh, the script a session with a GPU runs, still works: each step runs
under its time limit with its output in the output folder and its line in steps.log, and a
failing step is reported there, with its error, without stopping the ones after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def test_the_script_runs_its_steps_and_reports_each(tmp_path):
    out = tmp_path / "out"
    # python3 is this interpreter, as the image's python3 holds torch on the GPU machine
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # the interpreter's own packages: no wheels a developer's checkout may hold for the GPU
    env = {**os.environ, "STEPS": "plan_push tests eval", "PATH": path,
           "GPU_CHECK_NO_WHEELS": "1",
           # the joint-evaluation step, on a run of seconds where there is no GPU
           "EVAL_ARGS": "--profile smoke --set num_tasks=2"
           + ("" if torch.cuda.is_available() else " --set device=cpu")}
    done = subprocess.run(["bash", "launch/gpu_check.sh", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    log = (out / "steps.log").read_text()
    lines = [line for line in log.splitlines() if " rc=" in line]
    # in the script's order
    assert [line.split()[0] for line in lines] == ["tests", "plan_push", "eval"]
    assert "tests rc=0" in log and "eval rc=0" in log
    report = json.loads((out / "eval.json").read_text())
    assert report["benchmark"] == "eval" and report["same_numbers"] is True
    assert "passed" in (out / "tests.log").read_text()
    if not torch.cuda.is_available():  # the bench refuses, naming why; the tests still ran
        assert "plan_push rc=2" in log
        assert "--device cuda: CUDA is not available" in log
    assert log.rstrip().splitlines()[-1].startswith("done in ")
