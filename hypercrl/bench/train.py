"""``hypercrl bench train``: seconds per HyperCRL training step vs the number of earlier tasks.

Sizes are the original's (reference §2): pusher (target 2x200 on 12 -> 10, hypernetwork
50-50 ELU; chunked 20-20, chunks of 2000) and door (target 4x200 on 35 -> 2x26
probabilistic, hypernetwork 256-256 ReLU; chunked 25-30, chunks of 4000). The variants not
in the original: low-rank (``lowrank_hnet``) and MIP (``mip_hnet``) with the full one's
trunk (rank 4; MIP's encoding and additive output), recurrent (``recurrent_hnet``) with the
chunked one's chunks and an LSTM of 20 (pusher) or 30 (door) units. Batch 100.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import torch

from hypercrl.cl import strategy_class
from hypercrl.model import TargetNet

SIZES: dict[str, dict[str, Any]] = {
    "pusher": {
        "in_dim": 12, "out_dim": 10, "hidden": (200, 200), "probabilistic": False,
        "hnet": {"hnet_hidden": (50, 50), "hnet_activation": "elu"},
        "chunked": {"hnet_hidden": (20, 20), "chunk_dim": 2000, "chunk_emb_dim": 20},
        "recurrent": {"chunk_dim": 2000, "chunk_emb_dim": 20, "rnn_hidden": 20},
    },
    "door": {
        "in_dim": 35, "out_dim": 26, "hidden": (200, 200, 200, 200), "probabilistic": True,
        "hnet": {"hnet_hidden": (256, 256), "hnet_activation": "relu"},
        "chunked": {"hnet_hidden": (25, 30), "chunk_dim": 4000, "chunk_emb_dim": 20},
        "recurrent": {"chunk_dim": 4000, "chunk_emb_dim": 20, "rnn_hidden": 30},
    },
}
EARLIER = (0, 1, 4, 10, 20)
# variant -> (its method, which of a size's option sets it takes)
VARIANTS: dict[str, tuple[str, str]] = {
    "full": ("hnet", "hnet"),
    "chunked": ("chunked_hnet", "chunked"),
    "lowrank": ("lowrank_hnet", "hnet"),  # hnet's sizes, rank 4
    "mip": ("mip_hnet", "hnet"),  # hnet's sizes, MIP's encoding and output
    "recurrent": ("recurrent_hnet", "recurrent"),
}


def _strategy(size: dict[str, Any], variant: str, device: torch.device):
    net = TargetNet(size["in_dim"], size["out_dim"], size["hidden"],
                    probabilistic=size["probabilistic"]).to(device)
    method, options = VARIANTS[variant]
    cls = strategy_class(method)
    return cls(net, cls.Options(**size[options]), torch.Generator().manual_seed(0))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(size: dict[str, Any], variant: str, earlier: int, device: torch.device,
               repeats: int, warmup: int) -> dict[str, Any]:
    """Median seconds of one train_step at task ``earlier`` (after ``earlier`` tasks)."""
    strat = _strategy(size, variant, device)
    for t in range(earlier):  # earlier tasks: embeddings and regularisation targets only
        strat.begin_task(t)
        strat.end_task(t, None, None)
    strat.begin_task(earlier)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(100, size["in_dim"], generator=gen).to(device)
    y = torch.randn(100, size["out_dim"], generator=gen).to(device)
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        strat.train_step(earlier, x, y)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    theta = sum(p.numel() for p in strat.hnet.parameters())
    return {
        "step_s": times[len(times) // 2],
        "hnet_params": theta,
        "target_params": strat.hnet.num_target_params,
    }


def finetune_step(size: dict[str, Any], device: torch.device, repeats: int,
                  warmup: int) -> float:
    """Median seconds of one ``finetune`` step on the same target network and batch: the
    reference an hnet step is compared with."""
    from hypercrl.cl import strategy_class

    net = TargetNet(size["in_dim"], size["out_dim"], size["hidden"],
                    probabilistic=size["probabilistic"]).to(device)
    cls = strategy_class("finetune")
    strat = cls(net, cls.make_options(), torch.Generator().manual_seed(0))
    strat.begin_task(0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(100, size["in_dim"], generator=gen).to(device)
    y = torch.randn(100, size["out_dim"], generator=gen).to(device)
    times = []
    for i in range(warmup + 5 * repeats):  # a fast step: more of them for a stable median
        _sync(device)
        start = time.perf_counter()
        strat.train_step(0, x, y)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def run(devices: list[torch.device], repeats: int, warmup: int,
        sizes: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"benchmark": "train", "batch_size": 100, "results": []}
    for device in devices:
        for name in sizes:
            for variant in VARIANTS:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                steps = {}
                info: dict[str, Any] = {}
                for n in EARLIER:
                    info = time_steps(SIZES[name], variant, n, device, repeats, warmup)
                    steps[n] = info["step_s"]
                finetune = finetune_step(SIZES[name], device, repeats, warmup)
                row = {
                    "device": str(device), "size": name, "hnet": variant,
                    "hnet_params": info["hnet_params"], "target_params": info["target_params"],
                    "step_s": {str(k): v for k, v in steps.items()},
                    "ratio_20_over_1": steps[20] / steps[1],
                    "finetune_step_s": finetune,
                    # the speed goal: a step with 4 earlier tasks against a finetune step
                    "ratio_4_over_finetune": steps[4] / finetune,
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
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per point")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps first (the first ones compile the look-ahead)")
    parser.add_argument("--sizes", default="pusher,door", help="comma list of pusher,door")
    parser.add_argument("--quick", action="store_true", help="3 timed steps, pusher only")
    args = parser.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        raise ValueError(f"unknown size(s) {unknown}; valid: {sorted(SIZES)}")
    if args.quick:
        args.repeats, args.warmup, sizes = 3, 3, ["pusher"]
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        elif args.device == "cuda":
            raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    print(json.dumps(run(devices, args.repeats, args.warmup, sizes), indent=2))
    return 0
