"""``hypercrl bench env`` reports raw physics and overhead on both backends (a smoke test,
not a timing)."""

from __future__ import annotations

import importlib.metadata
import json
import math

from envs import bench


def test_bench_env_reports_overhead_on_both_backends(capsys):
    assert bench.main(["--backend", "all", "--steps", "5", "--family", "push"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["machine"]["pybullet"] == importlib.metadata.version("pybullet")
    for backend in ("mujoco", "pybullet"):
        result = report["results"][backend]["push"]
        assert "error" not in result and "skipped" not in result, result
        for key in ("overhead_ratio", "raw_steps_per_s", "env_steps_per_s"):
            value = result[key]
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, value)
        assert result["physics_steps_per_env_step"] == 50  # 10 Hz control, 2 ms physics
