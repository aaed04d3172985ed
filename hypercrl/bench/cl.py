"""``hypercrl bench cl DATA.npz``: every method and hypernetwork variant through one task
sequence of fixed transitions, without planning: held-out error, retention, speed and size.

DATA is written by ``launch/record.py`` (random and scripted episodes of every task). Every
4th episode of each task is held out (the loop's split). Each method trains a model of the
``--profile``'s network sizes (the family's presets) for ``--steps`` gradient steps per task,
on that task's training transitions alone, the tasks in order; after each task the one-step
MSE on every seen task's held-out transitions fills E[i, j]. Per method (mean over seeds):

- ``params``: trainable parameters of what the method learns across tasks (the
  hypernetwork, embeddings excluded, for the hnet variants; the target network otherwise);
- ``ms_per_step``: milliseconds per gradient step on the first task and on the last (with
  T - 1 earlier tasks to regularise or replay);
- ``final_error``: E[T-1, j] per task, and their mean;
- ``retention``: E[T-1, j] / E[j, j] per earlier task (1: nothing forgotten; higher: worse);
- ``convergence``: the first task's held-out error after ``--probe`` steps;
- ``universal_final_error`` (methods with a universal embedding, ``interval_hnet``): the
  error on every task of the one model generated at the universal embedding after the last
  task (each task's data standardised with its own statistics).

A ``--methods`` entry may change options of its method for that row alone, as
``method:key=value[:key=value]`` (e.g. ``mip_hnet:residual=false``, ``hnet:lr=1e-3``); the
row is labelled with the entry as written.

Prints JSON; ``--md FILE`` also writes the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import zipfile
import zlib
from typing import Any

import numpy as np

from hypercrl.bench.argtypes import int_list

DEFAULT_METHODS = (
    "hnet,lowrank_hnet,mip_hnet,recurrent_hnet,interval_hnet,chunked_hnet,finetune,single,coreset,"
    "ewc,si,multitask"
)


HELDOUT_EVERY = 4  # every 4th episode of a task is held out (the loop's split)


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of the .npz ``path``; ValueError naming the file when it is none (an
    OSError, e.g. no such file, passes as it is)."""
    what = f"{path}: not a recording of launch/record.py"
    try:
        f = np.load(path)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError("an .npy array")
        with f:
            return {k: f[k] for k in f.files}
    except EOFError:
        raise ValueError(f"{what} (the file is empty)") from None
    except (ValueError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error) as err:
        detail = str(err) if str(err) == "an .npy array" else "not an .npz file numpy can read"
        raise ValueError(f"{what} ({detail})") from None


def load(path: str) -> dict[str, Any]:
    """The recorded sequence: facts and per-task (train, held-out) transitions."""
    data = _read_npz(path)
    missing = [k for k in ("family", "state_kinds", "task_names", "s0") if k not in data]
    missing += [f"{k}{j}" for j in range(len(data.get("task_names", ())))
                for k in ("s", "a", "s2", "ep") if f"{k}{j}" not in data]
    if missing:
        raise ValueError(f"{path}: not a recording of launch/record.py (missing {missing})")
    tasks = []
    for j, name in enumerate(data["task_names"]):
        s, a, s2, ep = (data[f"{k}{j}"] for k in ("s", "a", "s2", "ep"))
        test = ep % HELDOUT_EVERY == HELDOUT_EVERY - 1
        if test.all() or not test.any():
            n = len(np.unique(ep))
            raise ValueError(
                f"{path}: task {j} ({name}) has {n} episode{'' if n == 1 else 's'}; every "
                f"{HELDOUT_EVERY}th is held out, so each task needs at least {HELDOUT_EVERY} "
                "(record more with launch/record.py --random/--scripted)")
        tasks.append(
            {"train": (s[~test], a[~test], s2[~test]), "heldout": (s[test], a[test], s2[test])}
        )
    return {
        "family": str(data["family"]),
        "state_kinds": [str(k) for k in data["state_kinds"]],
        "task_names": [str(n) for n in data["task_names"]],
        "tasks": tasks,
    }


def parse_entry(entry: str, flag: str = "--methods") -> tuple[str, dict[str, Any]]:
    """An entry of ``flag``, ``method[:key=value...]`` -> (method, typed option overrides);
    ValueError naming the flag, the entry and what is wrong."""
    from hypercrl.cl import METHODS
    from hypercrl.config import coerce, method_fields, select_arch

    name, *pairs = entry.split(":")
    try:  # hnet:hnet_arch=lowrank is the row lowrank_hnet
        name, pairs = select_arch(name, pairs)
    except ValueError as err:
        raise ValueError(f"{flag} {entry!r}: {err}") from None
    if name not in METHODS:
        raise ValueError(f"{flag}: unknown {name!r}; known: {sorted(METHODS)}")
    fields = method_fields(name)
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"{flag} {entry!r}: expected method:key=value, got {pair!r}")
        if key not in fields:
            raise ValueError(
                f"{flag} {entry!r}: {key!r} is not an option of {name}; valid: "
                f"{sorted(fields)}"
            )
        try:
            options[key] = coerce(key, text, fields[key], from_text=True)
        except ValueError as err:
            raise ValueError(f"{flag} {entry!r}: {err}") from None
    return name, options


def split_entries(text: str) -> list[str]:
    """Comma-separated entries; commas inside [...] (a list value) do not split."""
    return [e.strip() for e in re.split(r",(?![^\[]*\])", text) if e.strip()]


def _model(data: dict[str, Any], method: str, profile: str, seed: int,
           overrides: dict[str, Any] | None = None):
    from hypercrl import ContinualDynamics, presets

    table = presets.resolve(data["family"], profile)
    options = {**table.get("methods", {}).get(method, {}), **(overrides or {})}
    model = table.get("model", {})
    s, a, _ = data["tasks"][0]["train"]
    return ContinualDynamics(
        s.shape[1],
        a.shape[1],
        method,
        seed=seed,
        hidden=model.get("hidden", (200, 200)),
        probabilistic=model.get("probabilistic", False),
        normalize_targets=model.get("normalize_targets", False),
        state_spec=data["state_kinds"],
        **options,
    )


def _universal_mse(cd, weights: dict[str, Any], heldout: tuple[np.ndarray, ...],
                   task: int) -> float:
    """One-step MSE on ``task``'s held-out transitions of the model with the universal
    embedding's ``weights`` (inputs and targets standardised with ``task``'s statistics)."""
    import torch

    from hypercrl.model.predictor import Predictor

    predictor = Predictor(cd.net, weights, cd.spec, cd.normalizers[task])
    s, a, s2 = (torch.as_tensor(x, dtype=torch.float32) for x in heldout)
    return float((predictor(s, a) - s2).pow(2).mean())


def _params(cd) -> int:
    strategy = cd.strategy
    module = getattr(strategy, "hnet", None) or cd.net
    return sum(p.numel() for p in module.parameters())


def run_method(
    data: dict[str, Any], method: str, profile: str, steps: int, probe: int, seed: int,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One method, one seed: the error matrix E [T, T] (NaN above the diagonal) and timings."""
    cd = _model(data, method, profile, seed, overrides)
    n = len(data["tasks"])
    errors = np.full((n, n), np.nan)
    ms: list[float] = []
    convergence = None
    for i, task in enumerate(data["tasks"]):
        cd.begin_task()
        start = time.perf_counter()
        if i == 0:
            cd.fit(*task["train"], steps=probe)
            convergence = cd.mse(*task["heldout"], task=0)
            cd.fit(*task["train"], steps=steps - probe)
        else:
            cd.fit(*task["train"], steps=steps)
        ms.append(1e3 * (time.perf_counter() - start) / steps)
        cd.end_task()
        for j in range(i + 1):
            errors[i, j] = cd.mse(*data["tasks"][j]["heldout"], task=j)
    universal = None
    if getattr(cd.strategy, "has_universal", lambda: False)():
        weights = {k: v[0] for k, v in cd.strategy.universal_weights().items()}
        universal = [_universal_mse(cd, weights, data["tasks"][j]["heldout"], j)
                     for j in range(n)]
    return {
        "errors": errors,
        "universal": universal,
        "ms_first": ms[0],
        "ms_last": ms[-1],
        "params": _params(cd),
        "convergence": convergence,
    }


def summarise(method: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds of one method's runs."""
    e = np.mean([r["errors"] for r in runs], axis=0)
    n = e.shape[0]
    final = e[n - 1]
    extra: dict[str, Any] = {}
    if all(r["universal"] is not None for r in runs):
        u = np.mean([r["universal"] for r in runs], axis=0)
        extra = {"universal_final_error": [float(x) for x in u],
                 "mean_universal_final_error": float(u.mean())}
    return {
        "method": method,
        "seeds": len(runs),
        "params": runs[0]["params"],
        "ms_per_step": {
            "first_task": float(np.mean([r["ms_first"] for r in runs])),
            "last_task": float(np.mean([r["ms_last"] for r in runs])),
        },
        "final_error": [float(x) for x in final],
        "mean_final_error": float(final.mean()),
        "retention": [float(final[j] / e[j, j]) for j in range(n - 1)],
        "mean_retention": float(np.mean([final[j] / e[j, j] for j in range(n - 1)]))
        if n > 1
        else None,
        "convergence": float(np.mean([r["convergence"] for r in runs])),
        "errors": [[None if np.isnan(x) else float(x) for x in row] for row in e],
        **extra,
    }


def markdown(result: dict[str, Any]) -> str:
    """The summary as a Markdown table."""
    lines = [
        "| method | parameters | ms/step (first, last task) | mean final error | "
        "mean retention | error after probe | universal embedding's mean error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        ret = "n/a" if r["mean_retention"] is None else f"{r['mean_retention']:.2f}"
        uni = r.get("mean_universal_final_error")
        lines.append(
            f"| {r['method']} | {r['params']:,} | {r['ms_per_step']['first_task']:.2f}, "
            f"{r['ms_per_step']['last_task']:.2f} | {r['mean_final_error']:.3g} | {ret} | "
            f"{r['convergence']:.3g} | {'n/a' if uni is None else f'{uni:.3g}'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hypercrl bench cl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", help="a recording of launch/record.py (.npz)")
    parser.add_argument(
        "--methods", default=DEFAULT_METHODS,
        help="comma list of methods, each optionally method:key=value[:key=value]",
    )
    parser.add_argument("--profile", default="paper", help="the presets' profile for sizes")
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps per task")
    parser.add_argument(
        "--probe",
        type=int,
        default=250,
        help="steps on the first task before its convergence probe",
    )
    parser.add_argument("--seeds", type=int_list, default="0", help="comma list of seeds")
    parser.add_argument("--md", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    try:
        entries = {e: parse_entry(e) for e in split_entries(args.methods)}
    except ValueError as err:
        parser.error(str(err))
    seeds = args.seeds
    if not 0 < args.probe < args.steps:
        parser.error(f"--probe must be between 1 and --steps - 1, got {args.probe}")
    if args.md:  # before the benchmark's minutes, not after them
        problem = _unwritable(args.md)
        if problem:
            parser.error(f"--md {args.md}: {problem}")
    data = load(args.data)
    result: dict[str, Any] = {
        "benchmark": "cl",
        "data": args.data,
        "family": data["family"],
        "tasks": data["task_names"],
        "profile": args.profile,
        "steps": args.steps,
        "probe": args.probe,
        "seeds": seeds,
        "results": [],
    }
    for entry, (method, overrides) in entries.items():
        runs = [run_method(data, method, args.profile, args.steps, args.probe, s, overrides)
                for s in seeds]
        result["results"].append(summarise(entry, runs))
    print(json.dumps(result, indent=1))  # the result first: a failing write keeps it
    sys.stdout.flush()
    if args.md:
        with open(args.md, "w") as f:
            f.write(markdown(result))
    return 0


def _unwritable(path: str) -> str | None:
    """Why a file cannot be written at ``path``, or None."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return "is a folder"
    if not os.path.isdir(folder):
        return f"no folder {folder}"
    if not os.access(folder, os.W_OK | os.X_OK) or (
            os.path.exists(path) and not os.access(path, os.W_OK)):
        return "not writable"
    return None
