"""The head's look-ahead shift at pusher and door size, one thread, ms per call (median of 20):
the look-ahead kernel on a written-out gradient (as before), the same after writing the
gradient (torch.outer), and the rank-one kernel with ||dtheta||^2 summed in its loop or in a
second kernel (hypercrl.cl.rank_one.shifted). Run from the repository root:
OMP_NUM_THREADS=1 python docs/results/factored-head/bench_shift.py"""
import sys
import time

import torch

sys.path.insert(0, ".")
from hypercrl.cl.lookahead import _shift_kernel, adam_update  # noqa: E402
from hypercrl.cl.rank_one import _moved  # noqa: E402
from hypercrl.cl.rank_one import _shift_kernel as _rank_one_shift  # noqa: E402

torch.set_num_threads(1)


def median_ms(fn, n=20):
    for _ in range(3):
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1e3 * sorted(times)[n // 2], 2)


def summed_in_loop(out, param, m, v, g, f, coef):
    _, _, d = adam_update(m, v, g[:, None] * f[None, :], coef)
    out.copy_(param + d)
    return (d * d).sum()


shift = torch.compile(_shift_kernel, dynamic=False)
in_loop = torch.compile(summed_in_loop, dynamic=False)
rank_one = torch.compile(_rank_one_shift, dynamic=False)
moved = torch.compile(_moved, dynamic=False)


def measure(n, k):
    w, m, v = torch.randn(n, k) * 0.01, torch.randn(n, k) * 1e-3, torch.rand(n, k) * 1e-5
    g, f, out, grad = torch.randn(n), torch.randn(k), torch.empty(n, k), torch.empty(n, k)
    coef = torch.tensor([0.1, 0.999, 1.2, 1e-8, -1e-4])
    return {
        "written_out_shift": median_ms(lambda: shift([out], [w], [grad], [m], [v], coef)),
        "outer_then_shift": median_ms(
            lambda: (torch.outer(g, f, out=grad), shift([out], [w], [grad], [m], [v], coef))),
        "rank_one_sum_in_loop": median_ms(lambda: in_loop(out, w, m, v, g, f, coef)),
        "rank_one_then_moved": median_ms(
            lambda: (rank_one(out, w, m, v, g, f, coef), moved(out, w))),
    }


for name, n, k in (("pusher", 44810, 50), ("door", 138252, 256)):
    print(name, measure(n, k), flush=True)
