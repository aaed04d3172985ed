"""``hypercrl bench infer SOURCE``: how well a model tells its tasks apart.

SOURCE is a run directory or a recording of ``launch/record.py`` (``.npz``):

- a run: its last checkpoint's dynamics model and the held-out transitions of every task it
  has seen (never trained on);
- a recording: a model of ``--method`` at the ``--profile``'s sizes is first trained on each
  task's training transitions in turn (``--steps`` per task, as ``hypercrl bench cl``
  trains), then asked about each task's held-out episodes (every 4th).

``ContinualDynamics.infer_task`` then says which task each window of W consecutive held-out
transitions comes from. ``--where-changes I:J`` keeps only the transitions in which state
dimensions I to J-1 change by more than ``--change`` (e.g. an object's, to score only the
steps that touch it) before cutting windows. Prints JSON: per window size, the share of
windows attributed to their own task, overall and per task, and the confusion counts (row:
the true task, column: the inferred one).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hypercrl.bench.argtypes import int_list, positive_int


def accuracy(dynamics, heldout: dict[int, tuple[np.ndarray, ...]], window: int) -> dict:
    """Windows of ``window`` consecutive transitions per task, and which task each gets."""
    n = dynamics.num_tasks
    confusion = np.zeros((n, n), dtype=int)
    start = time.perf_counter()
    for j, (s, a, s2) in heldout.items():
        for k in range(0, len(s) - window + 1, window):
            got = dynamics.infer_task(s[k:k + window], a[k:k + window], s2[k:k + window])
            confusion[j, got.task] += 1
    windows = int(confusion.sum())
    per_task = [float(confusion[j, j] / confusion[j].sum()) if confusion[j].sum() else None
                for j in range(n)]
    return {"window": window, "windows": windows,
            "accuracy": float(np.trace(confusion) / windows) if windows else None,
            "per_task": per_task, "confusion": confusion.tolist(),
            "ms_per_inference": 1e3 * (time.perf_counter() - start) / max(1, windows)}


def where_changes(heldout: dict[int, tuple[np.ndarray, ...]], dims: slice, change: float
                  ) -> dict[int, tuple[np.ndarray, ...]]:
    """Each task's transitions in which a state dimension of ``dims`` changes by more than
    ``change``."""
    out = {}
    for j, (s, a, s2) in heldout.items():
        keep = np.abs(s2[:, dims] - s[:, dims]).max(1) > change
        out[j] = (s[keep], a[keep], s2[keep])
    return out


def _from_run(run_dir: str) -> tuple[object, dict, dict]:
    from hypercrl.api import ContinualDynamics
    from hypercrl.loop import RunError, load_checkpoint

    state = load_checkpoint(run_dir)
    learner = state["learner"]
    if "dynamics" not in learner or not learner.get("heldout"):
        raise RunError(f"{run_dir}: a run of method {state['config']['method']!r} has no "
                       "dynamics model with held-out transitions to infer tasks from")
    dynamics = ContinualDynamics.load_from_state(learner["dynamics"])
    heldout = {int(j): (b["s"], b["a"], b["s2"]) for j, b in learner["heldout"].items()
               if len(b["s"]) and int(j) < dynamics.num_tasks}
    facts = {"run_dir": run_dir, "method": state["config"]["method"],
             "sequence": state["config"]["sequence"]}
    return dynamics, heldout, facts


def _from_recording(path: str, entry: str, profile: str, steps: int, seed: int
                    ) -> tuple[object, dict, dict]:
    from hypercrl.bench.cl import _model, load, parse_entry

    method, overrides = parse_entry(entry, flag="--method")
    data = load(path)
    dynamics = _model(data, method, profile, seed, overrides)
    start = time.perf_counter()
    for task in data["tasks"]:
        dynamics.begin_task()
        dynamics.fit(*task["train"], steps=steps)
        dynamics.end_task()
    heldout = {j: task["heldout"] for j, task in enumerate(data["tasks"])}
    facts = {"data": path, "method": entry, "sequence": data["family"], "profile": profile,
             "steps_per_task": steps, "seed": seed,
             "training_seconds": round(time.perf_counter() - start, 1)}
    return dynamics, heldout, facts


def _dims(text: str) -> slice:
    first, sep, last = text.partition(":")
    try:
        i, j = int(first), int(last)
    except ValueError:
        raise ValueError(f"--where-changes {text!r}: expected I:J, two integers") from None
    if not sep or not 0 <= i < j:
        raise ValueError(f"--where-changes {text!r}: expected I:J with 0 <= I < J")
    return slice(i, j)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hypercrl bench infer", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a run directory, or a recording (.npz)")
    parser.add_argument("--windows", type=int_list, default="1,5,10,25,50",
                        help="comma list of window sizes W (transitions per inference)")
    parser.add_argument("--where-changes", metavar="I:J",
                        help="score only transitions where state dims I..J-1 change")
    parser.add_argument("--change", type=float, default=2e-3,
                        help="the change --where-changes asks for (default 2e-3)")
    recording = parser.add_argument_group("with a recording")
    recording.add_argument("--method", default="hnet",
                           help="method[:key=value...], as a row of hypercrl bench cl")
    recording.add_argument("--profile", default="quick", help="the presets' profile for sizes")
    recording.add_argument("--steps", type=positive_int, default=2000,
                           help="gradient steps per task")
    recording.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    windows = args.windows
    if min(windows) < 1:
        parser.error(f"--windows {','.join(map(str, windows))!r}: every window must be 1 or "
                     "more")
    try:
        dims = _dims(args.where_changes) if args.where_changes else None
    except ValueError as err:
        parser.error(str(err))
    if args.source.endswith(".npz"):
        try:
            dynamics, heldout, facts = _from_recording(args.source, args.method, args.profile,
                                                       args.steps, args.seed)
        except ValueError as err:
            parser.error(str(err))
    else:
        dynamics, heldout, facts = _from_run(args.source)
    if dims is not None:
        heldout = where_changes(heldout, dims, args.change)
        facts["where_changes"] = [dims.start, dims.stop, args.change]
    print(json.dumps({
        "benchmark": "infer", **facts, "tasks": dynamics.num_tasks,
        "heldout_transitions": {j: len(h[0]) for j, h in heldout.items()},
        "results": [accuracy(dynamics, heldout, w) for w in windows],
    }, indent=2))
    return 0
