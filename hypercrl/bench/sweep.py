"""``hypercrl bench sweep``: what Ray costs and gives on this machine.

Runs the same grid (``--methods`` x ``--seeds`` on one sequence, the smoke profile by default)
twice, each into a fresh temporary folder: one run after another in this process (what a
series of ``hypercrl run`` does, with torch's default threads) and as a ``hypercrl sweep`` on
a local Ray (``--num-cpus``, 1 CPU and 1 torch thread per trial). Then it times Ray's start
and shutdown alone. Prints JSON: the wall seconds of each, their ratio, and whether both gave
the same performance matrices.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

from hypercrl.bench.argtypes import int_list, positive_int


def _timed_sweep(args: argparse.Namespace, engine: str) -> tuple[float, dict]:
    from hypercrl.cli import sweep

    with tempfile.TemporaryDirectory(prefix=f"hypercrl-bench-sweep-{engine}-") as out:
        start = time.perf_counter()
        result = sweep([args.sequence], [args.backend], args.methods.split(","),
                       args.seeds, args.profile, args.set,
                       out, engine=engine, quiet=True, num_cpus=args.num_cpus)
        seconds = time.perf_counter() - start
        if result.failed:
            raise RuntimeError(f"trials failed: {result.failed}")
        matrices = {}
        for name in result.finished:
            with open(os.path.join(out, name, "metrics.json"), encoding="utf-8") as f:
                matrices[name] = json.load(f)["returns"]
    return seconds, matrices


def ray_start_s(num_cpus: int | None) -> float:
    """Seconds of ``ray.init`` and ``ray.shutdown`` of a local instance."""
    import ray

    from hypercrl.sweep import RAY_INIT

    start = time.perf_counter()
    ray.init(num_cpus=num_cpus, **RAY_INIT)
    ray.shutdown()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    from hypercrl.cli import DEFAULT_BACKEND, DEFAULT_SEQUENCE

    parser = argparse.ArgumentParser(
        prog="hypercrl bench sweep", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", default=DEFAULT_SEQUENCE)
    parser.add_argument("--backend", default=DEFAULT_BACKEND)
    parser.add_argument("--methods", default="hnet,finetune", help="comma list of methods")
    parser.add_argument("--seeds", type=int_list, default="0,1", help="comma list of seeds")
    parser.add_argument("--profile", default="smoke", help="paper, quick or smoke")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a run key or method/planner option, as in `hypercrl run`")
    parser.add_argument("--num-cpus", type=positive_int, default=None,
                        help="CPUs of the local Ray (default: all)")
    args = parser.parse_args(argv)
    from hypercrl.sweep import INSTALL, ray_available

    if not ray_available():
        parser.error(f"needs Ray: {INSTALL}")
    threads = torch.get_num_threads()
    serial_s, serial = _timed_sweep(args, "serial")
    ray_s, on_ray = _timed_sweep(args, "ray")
    start_s = ray_start_s(args.num_cpus)
    print(json.dumps({
        "benchmark": "sweep", "sequence": args.sequence, "backend": args.backend,
        "methods": args.methods, "seeds": ",".join(map(str, args.seeds)), "profile": args.profile,
        "sets": args.set, "cpus": args.num_cpus or os.cpu_count(),
        "serial_threads": threads, "trials": len(serial),
        "serial_s": serial_s, "ray_s": ray_s, "ray_over_serial": ray_s / serial_s,
        "ray_start_and_shutdown_s": start_s,
        "same_matrices": serial == on_ray,
    }, indent=2))
    return 0
