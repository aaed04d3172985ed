"""Where a pusher-size HyperCRL step's time goes (issue 12's 3x aim), one torch thread.

The full hypernetwork at the `paper` pusher size, 4 earlier tasks, batch 100, built as
`hypercrl bench train` builds it; the medians of 200 steps of it and of a `finetune` step,
then torch.profiler over 50 steps, grouped into the kernels that move theta (matrix products,
the compiled look-ahead and rank-one kernels, fused Adam) and everything else.

Usage: python docs/results/pusher-step-profile/profile_step.py
"""

from __future__ import annotations

import json
import time

import torch
from torch.profiler import ProfilerActivity, profile

from hypercrl.bench import train

torch.set_num_threads(1)
DEVICE = torch.device("cpu")


def median_ms(step, n: int = 200) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[n // 2] * 1e3


def main() -> None:
    setting = train.size("push", "full")
    _, hnet = train._hnet_stepper(setting, "full", 4, DEVICE)
    finetune = train._finetune_stepper(setting, DEVICE)
    for _ in range(60):
        hnet()
        finetune()
    out = {"hnet_step_ms": median_ms(hnet), "finetune_step_ms": median_ms(finetune)}
    steps = 50
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            hnet()
    groups = {"matrix products": 0.0, "compiled kernels": 0.0, "fused Adam": 0.0}
    total = 0.0
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1e3 / steps
        total += ms
        if event.key in ("aten::mm", "aten::addmm", "aten::bmm"):
            groups["matrix products"] += ms
        elif event.key.startswith("## Call CompiledFxGraph"):
            groups["compiled kernels"] += ms
        elif event.key == "aten::_fused_adam_":
            groups["fused Adam"] += ms
    out["profiled_step_ms"] = total
    out["per_step_ms"] = {k: round(v, 3) for k, v in groups.items()}
    out["per_step_ms"]["everything else"] = round(total - sum(groups.values()), 3)
    out["ratio"] = out["hnet_step_ms"] / out["finetune_step_ms"]
    out["ratio_without_everything_else"] = (
        (total - out["per_step_ms"]["everything else"]) / out["finetune_step_ms"]
    )
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()},
                     indent=1))


if __name__ == "__main__":
    main()
