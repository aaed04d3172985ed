"""A/B in one process: a regularised hnet step at 4 earlier tasks with the look-ahead's length
(``dtheta_norm``) summed on every step, as before, and never, in alternating blocks of 5
steps; the cost of summing it on every 10th step (hypercrl.cl.hnet.MOVED_EVERY) follows.
Run from the repository root: OMP_NUM_THREADS=1 python docs/results/moved-every/ab.py"""
import statistics
import sys
import time

import torch

sys.path.insert(0, ".")
import hypercrl.cl.hnet as hnet  # noqa: E402
from hypercrl.bench.train import _strategy, size  # noqa: E402
from hypercrl.cpu import configure  # noqa: E402

torch.set_num_threads(1)
configure()
EARLIER, ALWAYS, NEVER = 4, 1, 10**9

for family, variant, blocks in (("push", "full", 20), ("door", "full", 6), ("push", "mip", 20),
                                ("door", "mip", 6)):
    setting = size(family, variant)
    strat = _strategy(setting, variant, torch.device("cpu"))
    for t in range(EARLIER):
        strat.begin_task(t)
        strat.end_task(t, None, None)
    strat.begin_task(EARLIER)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(100, setting["in_dim"], generator=gen)
    y = torch.randn(100, setting["out_dim"], generator=gen)
    times: dict[int, list[float]] = {ALWAYS: [], NEVER: []}
    for block in range(-2, blocks):  # the first two blocks warm up (and compile) both
        for every in (ALWAYS, NEVER) if block % 2 == 0 else (NEVER, ALWAYS):
            hnet.MOVED_EVERY = every
            strat.task_steps = 1  # steps 1-5: multiples of 1, never of 10**9
            for _ in range(5):
                start = time.perf_counter()
                strat.train_step(EARLIER, x, y)
                if block >= 0:
                    times[every].append(time.perf_counter() - start)
    always, never = statistics.median(times[ALWAYS]), statistics.median(times[NEVER])
    tenth = 0.9 * never + 0.1 * always
    print(f"{family} {variant} at {EARLIER} earlier tasks: summed every step {1e3 * always:.2f} "
          f"ms, never {1e3 * never:.2f} ms, every 10th {1e3 * tenth:.2f} ms = "
          f"{tenth / always:.3f}x", flush=True)
