"""``hypercrl bench train``: seconds per HyperCRL training step vs the number of earlier tasks.

Sizes are each task family's ``paper`` sizes, the original's (reference §2), read from the
task sequence and hypercrl's presets (:mod:`hypercrl.bench.family`): the target network and
every variant's own options. The variants not in the original: low-rank (``lowrank_hnet``)
and MIP (``mip_hnet``) with the full one's trunk (rank 4; MIP's encoding and additive
output), recurrent (``recurrent_hnet``) with the chunked one's chunks and an LSTM. Batch 100.
Each row also has the speed goal's ratio, a step after 4 earlier tasks over a ``finetune``
step of the same target network, timed in turns (``interleaved_4``) so that the machine's
drift moves both alike.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import torch

from hypercrl.bench import family
from hypercrl.bench.argtypes import non_negative_int, positive_int
from hypercrl.cl import strategy_class
from hypercrl.model import TargetNet

EARLIER = (0, 1, 4, 10, 20)
RATIO_EARLIER = 4  # the speed goal's point: a step after 4 earlier tasks
# variant -> its method; each takes its own `paper` options from the family's presets
VARIANTS: dict[str, str] = {
    "full": "hnet",
    "chunked": "chunked_hnet",
    "lowrank": "lowrank_hnet",  # hnet's sizes, rank 4
    "mip": "mip_hnet",  # hnet's sizes, MIP's encoding and output
    "recurrent": "recurrent_hnet",
}


def size(name: str, variant: str = "full") -> dict[str, Any]:
    """Family ``name``'s target network and ``variant``'s options (``paper``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown hypernetwork variant {variant!r}; valid: {list(VARIANTS)}")
    return family.setting(name, VARIANTS[variant])


def _strategy(setting: dict[str, Any], variant: str, device: torch.device):
    net = TargetNet(setting["in_dim"], setting["out_dim"], setting["hidden"],
                    probabilistic=setting["probabilistic"]).to(device)
    cls = strategy_class(VARIANTS[variant])
    return cls(net, cls.Options(**setting["method_options"]), torch.Generator().manual_seed(0))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch(setting: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(100, setting["in_dim"], generator=gen).to(device)
    y = torch.randn(100, setting["out_dim"], generator=gen).to(device)
    return x, y


def _hnet_stepper(setting: dict[str, Any], variant: str, earlier: int, device: torch.device):
    """(strategy, one training step of it at task ``earlier``, after ``earlier`` tasks)."""
    strat = _strategy(setting, variant, device)
    for t in range(earlier):  # earlier tasks: embeddings and regularisation targets only
        strat.begin_task(t)
        strat.end_task(t, None, None)
    strat.begin_task(earlier)
    x, y = _batch(setting, device)
    return strat, lambda: strat.train_step(earlier, x, y)


def _finetune_stepper(setting: dict[str, Any], device: torch.device):
    """One ``finetune`` training step on the same target network and batch: the reference an
    hnet step is compared with."""
    net = TargetNet(setting["in_dim"], setting["out_dim"], setting["hidden"],
                    probabilistic=setting["probabilistic"]).to(device)
    cls = strategy_class("finetune")
    strat = cls(net, cls.make_options(), torch.Generator().manual_seed(0))
    strat.begin_task(0)
    x, y = _batch(setting, device)
    return lambda: strat.train_step(0, x, y)


def _timed(step, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def _median(times: list[float]) -> float:
    return sorted(times)[len(times) // 2]


def time_steps(setting: dict[str, Any], variant: str, earlier: int, device: torch.device,
               repeats: int, warmup: int) -> dict[str, Any]:
    """Median seconds of one train_step at task ``earlier`` (after ``earlier`` tasks)."""
    return _time_stepper(*_hnet_stepper(setting, variant, earlier, device), device, repeats,
                         warmup)


def _time_stepper(strat, step, device: torch.device, repeats: int,
                  warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        step()
    theta = sum(p.numel() for p in strat.hnet.parameters())
    return {
        "step_s": _median([_timed(step, device) for _ in range(repeats)]),
        "hnet_params": theta,
        "target_params": strat.hnet.num_target_params,
    }


def finetune_step(setting: dict[str, Any], device: torch.device, repeats: int,
                  warmup: int) -> float:
    """Median seconds of one ``finetune`` step on the same target network and batch."""
    step = _finetune_stepper(setting, device)
    for _ in range(warmup):
        step()
    # a fast step: more of them for a stable median
    return _median([_timed(step, device) for _ in range(5 * repeats)])


def interleaved_ratio(setting: dict[str, Any], variant: str, earlier: int,
                      device: torch.device, repeats: int, warmup: int,
                      hnet=None) -> dict[str, float]:
    """The hnet step at task ``earlier`` against a finetune step, timed in turns (one hnet
    step, then five finetune steps, ``repeats`` times), so that the machine's drift, which
    moves either alone by 10-30 % from one minute to the next, moves both alike: the
    medians of each and their ratio. ``hnet``: that step, where one is already built."""
    if hnet is None:
        _, hnet = _hnet_stepper(setting, variant, earlier, device)
    finetune = _finetune_stepper(setting, device)
    for _ in range(warmup):
        hnet()
        finetune()
    hnet_times, finetune_times = [], []
    for _ in range(repeats):
        hnet_times.append(_timed(hnet, device))
        finetune_times.extend(_timed(finetune, device) for _ in range(5))
    h, f = _median(hnet_times), _median(finetune_times)
    return {"step_s": h, "finetune_step_s": f, "ratio": h / f}


def run(devices: list[torch.device], repeats: int, warmup: int,
        families: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"benchmark": "train", "batch_size": 100, "results": []}
    for device in devices:
        for name in families:
            for variant in VARIANTS:
                setting = size(name, variant)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                steps = {}
                info: dict[str, Any] = {}
                for n in EARLIER:
                    strat, step = _hnet_stepper(setting, variant, n, device)
                    info = _time_stepper(strat, step, device, repeats, warmup)
                    steps[n] = info["step_s"]
                    if n == RATIO_EARLIER:  # the same strategy, timed in turns too
                        turns = interleaved_ratio(setting, variant, n, device, repeats, warmup,
                                                  hnet=step)
                    del strat, step  # one strategy held at a time
                finetune = finetune_step(setting, device, repeats, warmup)
                row = {
                    "device": str(device), "family": name, "hnet": variant,
                    "hnet_params": info["hnet_params"], "target_params": info["target_params"],
                    "step_s": {str(k): v for k, v in steps.items()},
                    "ratio_20_over_1": steps[20] / steps[1],
                    "finetune_step_s": finetune,
                    # the speed goal: a step with 4 earlier tasks against a finetune step,
                    # from the medians above and, steadier, timed in turns
                    "ratio_4_over_finetune": steps[RATIO_EARLIER] / finetune,
                    "interleaved_4": turns,
                }
                if device.type == "cuda":
                    row["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
                results["results"].append(row)
    # ru_maxrss is in KiB on Linux: the process's peak resident memory over the whole run
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["torch"] = torch.__version__
    results["threads"] = torch.get_num_threads()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hypercrl bench train", description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "all"])
    parser.add_argument("--repeats", type=positive_int, default=20, help="timed steps per point")
    parser.add_argument("--warmup", type=non_negative_int, default=3,
                        help="untimed steps first (the first ones compile the look-ahead)")
    parser.add_argument("--families", default=",".join(family.known()),
                        help="comma list of task families whose `paper` sizes to time "
                             f"(default: all, {','.join(family.known())})")
    parser.add_argument("--quick", action="store_true",
                        help="3 timed steps, the first family of --families only")
    args = parser.parse_args(argv)
    try:
        families = family.parse(args.families)
    except ValueError as err:
        parser.error(str(err))
    if args.quick:
        args.repeats, args.warmup, families = 3, 3, families[:1]
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        elif args.device == "cuda":
            raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    print(json.dumps(run(devices, args.repeats, args.warmup, families), indent=2))
    return 0
