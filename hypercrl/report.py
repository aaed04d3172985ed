"""``hypercrl report RUN_DIR...``: a Markdown summary and PNG plots comparing runs.

Runs are grouped by (sequence, backend, method); within a group every seed is one sample.
The report keeps a copy of each run's metrics.json under ``data/``, so a report folder can be
reported again, alone or with new runs, after the run directories are gone.

Kept copies are never dropped silently: a report written into a folder that already keeps
runs (an earlier report's ``--out``) replaces a kept copy only with the same run at the same
stage or further (its run folder, or the copy itself, given again). Every other kept run is
reported again beside the runs given, named as such in REPORT.md and on stderr; to leave one
out, delete its folder under ``data/`` (or write the report to another folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections import defaultdict
from typing import Any

import numpy as np

from hypercrl import metrics as M
from hypercrl.io import folder_problem
from hypercrl.metrics import performance_matrix as matrix


def load_run(run_dir: str) -> dict[str, Any]:
    """A run's metrics.json, its shape checked; ValueError names the file and the field."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir}: no metrics.json (not a run directory, or no task ended)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable ({err})") from None
    problem = metrics_problem(data)
    if problem:
        raise ValueError(f"{path}: not a hypercrl metrics.json: {problem}")
    data["run_dir"] = run_dir
    return data


# config keys the report reads -> their JSON types
_CONFIG_KEYS = {"sequence": str, "backend": str, "method": str, "profile": str, "seed": int,
                "init_random_steps": int, "mpc_steps": int, "retrain_every": int,
                "train_iters": int, "eval_episodes": int}


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def metrics_problem(data: Any) -> str | None:
    """What makes ``data`` (a parsed metrics.json) unusable for a report, naming the field;
    None if it has the shape a run writes."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    cfg = data.get("config")
    if not isinstance(cfg, dict):
        return "'config' missing or not an object"
    for key, tp in _CONFIG_KEYS.items():
        if not isinstance(cfg.get(key), tp) or isinstance(cfg.get(key), bool):
            return f"'config.{key}' missing or not a {tp.__name__}"
    for key in ("method_options", "planner_options"):
        if not isinstance(cfg.get(key, {}), dict):
            return f"'config.{key}' is not an object"
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        return "'tasks' missing or not a list of task names"
    n = len(tasks)
    if not isinstance(data.get("has_success", True), bool):
        return f"'has_success' holds {data['has_success']!r}, not true or false"
    for key in ("returns", "successes"):
        problem = _matrix_problem(data.get(key), key, n, episodes=True)
        if problem:
            return problem
    for key in ("model_error_1", "model_error_h"):
        if data.get(key):
            problem = _matrix_problem(data[key], key, n, episodes=False)
            if problem:
                return problem
    for key in ("train_episodes", "eval_curve"):
        rows = data.get(key)
        if not isinstance(rows, list):
            return f"'{key}' missing or not a list"
        for row in rows:
            if not (isinstance(row, dict) and isinstance(row.get("task"), int)
                    and _number(row.get("env_steps")) and _number(row.get("return"))):
                return f"'{key}' holds {row!r}, not {{task, env_steps, return}}"
    return None


def _matrix_problem(rows: Any, key: str, n: int, episodes: bool) -> str | None:
    """Rows ``{"i": [cell of task 0..i]}`` with i < n; a cell is a list of episode values
    (``episodes``) or one value."""
    if not isinstance(rows, dict):
        return f"'{key}' missing or not an object"
    for i, row in rows.items():
        if not (i.isdigit() and int(i) < n):
            return f"'{key}' has row {i!r}; rows are task indices 0..{n - 1}"
        if not isinstance(row, list) or len(row) > int(i) + 1:
            return f"'{key}.{i}' is not a list of at most {int(i) + 1} cells"
        for cell in row:
            ok = (isinstance(cell, list) and cell and all(_number(x) for x in cell)
                  if episodes else _number(cell))
            if not ok:
                return (f"'{key}.{i}' holds {cell!r}, not "
                        + ("a list of numbers" if episodes else "a number"))
    return None


DATA_DIR = "data"  # in a report folder: one folder per reported run, holding its metrics.json


def kept_runs(folder: str) -> list[str] | None:
    """The run folders a report kept under ``folder/data``, None if ``folder`` is not a
    report folder (no REPORT.md beside a data folder, or a run directory itself)."""
    data = os.path.join(folder, DATA_DIR)
    if (not os.path.isfile(os.path.join(folder, "REPORT.md")) or not os.path.isdir(data)
            or os.path.isfile(os.path.join(folder, "metrics.json"))):
        return None
    return sorted(os.path.join(data, name) for name in os.listdir(data)
                  if os.path.isfile(os.path.join(data, name, "metrics.json")))


def _kept_entries(out_dir: str) -> list[str]:
    """The names of the kept metrics folders in ``out_dir/data`` (none if it is missing);
    ValueError if that folder holds anything else (it is not a report's to replace)."""
    data = os.path.join(out_dir, DATA_DIR)
    if not os.path.lexists(data):
        return []
    if not os.path.isdir(data) or os.path.islink(data):
        raise ValueError(f"{data}: not a folder (a report keeps its runs' metrics there)")
    names = sorted(os.listdir(data))
    for name in names:
        entry = os.path.join(data, name)
        if (not os.path.isdir(entry) or os.path.islink(entry)
                or os.listdir(entry) != ["metrics.json"]):
            raise ValueError(f"{entry}: not a kept metrics folder; move it out of {data} "
                             "(a report replaces what it keeps there)")
    return names


def _same_path(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def earlier_kept(given: list[dict[str, Any]], out_dir: str) -> list[dict[str, Any]]:
    """The runs an earlier report kept in ``out_dir/data`` that none of the ``given`` runs
    (loaded with :func:`load_run`) replaces: a kept copy is replaced only by itself (given
    again) or by the same run (:func:`_one_run`) that finished at least as many tasks.
    Writing the report without the others would delete their only copy, so it reports them
    again. ValueError (before anything is written) if ``out_dir/data`` holds anything but
    kept metrics, or a kept metrics.json a report cannot read."""
    data = os.path.join(out_dir, DATA_DIR)
    extra = []
    for name in _kept_entries(out_dir):
        folder = os.path.join(data, name)
        if any(_same_path(g["run_dir"], folder) for g in given):
            continue
        kept = load_run(folder)
        if not any(_one_run(g, kept) and len(g["returns"]) >= len(kept["returns"])
                   for g in given):
            extra.append(kept)
    return extra


def _keep_metrics(runs: list[dict[str, Any]], out_dir: str) -> None:
    """Copy each run's metrics.json to ``out_dir/data/<run folder name>/``, replacing what an
    earlier report kept there (a kept copy among ``runs`` keeps its folder name); ValueError,
    before anything is changed, if that folder holds anything but kept metrics (it is not
    this report's to replace). Callers pass every kept run that is to stay
    (:func:`earlier_kept`): the others are deleted."""
    data = os.path.join(out_dir, DATA_DIR)
    _kept_entries(out_dir)
    texts = {}  # read every source first: they may be the kept copies about to be replaced
    for run in runs:
        with open(os.path.join(run["run_dir"], "metrics.json"), "rb") as f:
            texts[run["run_dir"]] = f.read()
    names: dict[str, str] = {}
    used: set[str] = set()
    for run in runs:  # kept copies first, under their own names
        here = os.path.normpath(os.path.abspath(run["run_dir"]))
        if _same_path(os.path.dirname(here), data) and os.path.basename(here) not in used:
            names[run["run_dir"]] = os.path.basename(here)
            used.add(names[run["run_dir"]])
    for run in runs:
        if run["run_dir"] in names:
            continue
        base = os.path.basename(os.path.normpath(os.path.abspath(run["run_dir"]))) or "run"
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}-{k}"
        used.add(name)
        names[run["run_dir"]] = name
    new = tempfile.mkdtemp(prefix=".data-", dir=out_dir)
    try:
        for run in runs:
            name = names[run["run_dir"]]
            os.makedirs(os.path.join(new, name))
            with open(os.path.join(new, name, "metrics.json"), "wb") as f:
                f.write(texts[run["run_dir"]])
        os.chmod(new, 0o777 & ~_umask())
        old = data + ".old" if os.path.isdir(data) else None
        if old:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(data, old)
        os.replace(new, data)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(new, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_out_dir(out_dir: str) -> None:
    """ValueError unless ``out_dir`` is a writable folder or can be created as one."""
    problem = folder_problem(out_dir)
    if problem:
        raise ValueError(f"report folder {out_dir}: {problem}")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def matrix_figure(ax, r: np.ndarray, label: str) -> None:
    n = r.shape[0]
    im = ax.imshow(r, cmap="viridis")
    ax.set_xlabel("evaluated task j")
    ax.set_ylabel("after training task i")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    for i in range(n):
        for j in range(n):
            if np.isfinite(r[i, j]):
                ax.text(j, i, f"{r[i, j]:.3g}", ha="center", va="center", color="w", fontsize=8)
    ax.figure.colorbar(im, ax=ax, label=label)


def matrix_figure_rgb(r: np.ndarray, label: str) -> np.ndarray:
    """The matrix as an [H, W, 3] uint8 image (for TensorBoard)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3.5), dpi=80)
    matrix_figure(ax, r, label)
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def _fmt(mean: float, lo: float, hi: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.1f} [{lo:.1f}, {hi:.1f}]" if hi > lo else f"{mean:.1f}"


def write_report(run_dirs: list[str], out_dir: str) -> str:
    """Write ``out_dir/REPORT.md`` and its PNGs; returns the Markdown path.

    Runs an earlier report kept in ``out_dir/data`` and no given run replaces
    (:func:`earlier_kept`) are reported beside ``run_dirs``, and said so."""
    with warnings.catch_warnings():  # NaN cells (tasks not yet seen) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        return _write_report(run_dirs, out_dir)


def _one_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether ``a`` and ``b`` are one run, maybe at two stages (a report's kept copy and the
    run folder it came from): the same config, and the same returns on every row both have
    (at least one)."""
    if a["config"] != b["config"]:
        return False
    both = [k for k in a["returns"] if k in b["returns"]]  # none: nothing tells them apart
    return bool(both) and all(a["returns"][k] == b["returns"][k] for k in both)


def without_repeats(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each run once: of the copies of one run, the one that got furthest (the first of
    equals). Returns the runs in their order and a line per copy left out, naming the copy
    kept; runs of one config whose results differ (e.g. one seed on two machines) all stay."""
    kept: list[dict[str, Any]] = []
    notes = []
    for run in runs:
        twin = next((i for i, k in enumerate(kept) if _one_run(k, run)), None)
        if twin is None:
            kept.append(run)
            continue
        if len(run["returns"]) > len(kept[twin]["returns"]):
            kept[twin], run = run, kept[twin]  # ``run`` is now the copy left out
        notes.append(f"`{run['run_dir']}` (the same run as `{kept[twin]['run_dir']}`; tasks "
                     f"finished {len(run['returns'])} there, {len(kept[twin]['returns'])} here)")
    return kept, notes


def _finished(run: dict[str, Any]) -> bool:
    """Whether the run has a performance-matrix row for every task."""
    return len(run["returns"]) == len(run["tasks"])


def _has_success(run: dict[str, Any]) -> bool:
    """Whether the run's tasks define success (runs written before the flag: yes)."""
    return bool(run.get("has_success", True))


def _finite_returns(run: dict[str, Any]) -> bool:
    """Whether every evaluation return is finite (``load_run`` checked they are numbers)."""
    return all(np.isfinite(x) for row in run["returns"].values() for cell in row for x in cell)


def _flat(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
    for group in ("method_options", "planner_options"):
        out.update(cfg.get(group, {}))
    return out


def variant_labels(configs: list[dict[str, Any]]) -> list[str]:
    """Each run's method name, plus the settings in which runs of that method (same sequence
    and backend) differ, other than the seed: e.g. ``hnet (normalize_targets=True)``."""
    by_method: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for c in configs:
        by_method[(c["sequence"], c["backend"], c["method"])].append(_flat(c))
    labels = []
    for c in configs:
        peers = by_method[(c["sequence"], c["backend"], c["method"])]
        mine = _flat(c)
        keys = sorted(k for k in mine if k != "seed"
                      and any(json.dumps(p.get(k)) != json.dumps(mine[k]) for p in peers))
        extra = ", ".join(f"{k}={mine[k]}" for k in keys)
        labels.append(f"{c['method']} ({extra})" if extra else c["method"])
    return labels


def settings_line(cfg: dict[str, Any]) -> str:
    """The settings a reader needs to weigh a table: profile, budget, evaluation, options."""
    opts = ", ".join(f"{k}={v}" for k, v in sorted(cfg.get("method_options", {}).items()))
    grads = (f" and {cfg['train_iters'] * _retrains(cfg)} model gradient steps"
             if cfg.get("planner_options") else "")
    return (f"Profile `{cfg['profile']}`: {cfg['init_random_steps']} random + "
            f"{cfg['mpc_steps']} MPC env steps{grads} per task; "
            f"{cfg['eval_episodes']} evaluation episodes per cell; targets "
            f"{'standardised' if cfg.get('normalize_targets') else 'raw (the original)'}; "
            f"planner {cfg.get('planner', 'cem')}; method options: {opts or 'none'}.")


def _retrains(cfg: dict[str, Any]) -> int:
    mpc, every = cfg["mpc_steps"], max(1, cfg["retrain_every"])
    return max(1, -(-mpc // every))


def _write_report(run_dirs: list[str], out_dir: str) -> str:
    if not run_dirs:
        raise ValueError("no run directories given")
    check_out_dir(out_dir)
    given = [load_run(d) for d in run_dirs]
    earlier = earlier_kept(given, out_dir)  # never deleted: reported again
    runs, repeats = without_repeats(given + earlier)
    diverged = [r["run_dir"] for r in runs if not _finite_returns(r)]
    runs = [r for r in runs if _finite_returns(r)]
    if not runs:
        raise ValueError(f"every run has non-finite returns (diverged): {diverged}")
    unfinished = [r["run_dir"] for r in runs if not r["returns"]]  # no task finished yet
    runs = [r for r in runs if r["returns"]]
    if not runs:
        raise ValueError(f"no run has finished a task yet: {unfinished}")
    if earlier:
        print(f"report: {out_dir} keeps runs not given here; reported again (delete their "
              f"folder under {os.path.join(out_dir, DATA_DIR)} to leave one out): "
              + ", ".join(r["run_dir"] for r in earlier), file=sys.stderr)
    os.makedirs(out_dir, exist_ok=True)
    left_out = set(diverged + unfinished)  # an earlier kept run left out stays kept
    _keep_metrics(runs + [r for r in earlier if r["run_dir"] in left_out], out_dir)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    labels = variant_labels([r["config"] for r in runs])
    for run, label in zip(runs, labels, strict=True):
        c = run["config"]
        groups[(c["sequence"], c["backend"], label)].append(run)
    partial: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for key, group in groups.items():  # a sweep under way: its finished seeds give the numbers
        whole = [g for g in group if _finished(g)]
        if whole and len(whole) < len(group):
            partial[key] = [g for g in group if not _finished(g)]
            groups[key] = whole
    plt = _plt()
    lines = ["# hypercrl report", ""]
    lines += ["Runs: " + ", ".join(f"`{r['run_dir']}`" for r in runs), ""]
    lines += [f"Their metrics are kept in `{DATA_DIR}/`: `hypercrl report` of this folder "
              "reports them again, alone or beside other runs.", ""]
    if earlier:
        lines += ["Kept by an earlier report in this folder and reported again (their runs "
                  f"were not given; delete a run's folder under `{DATA_DIR}/` to leave it out): "
                  + ", ".join(f"`{r['run_dir']}`" for r in earlier), ""]
    head = len(lines)  # the summary goes here
    if repeats:
        lines += ["Given twice, reported once: " + ", ".join(repeats), ""]
    if diverged:
        lines += ["Left out, non-finite returns (diverged): "
                  + ", ".join(f"`{d}`" for d in diverged), ""]
    if unfinished:
        lines += ["Left out, no task finished yet: "
                  + ", ".join(f"`{d}`" for d in unfinished), ""]
    singles = {(k[0], k[1]): g for k, g in groups.items() if k[2].split(" ")[0] == "single"}
    summary_rows = []
    for (seq, backend, method), group in sorted(groups.items()):
        n = len(group[0]["tasks"])
        rs = [matrix(g["returns"], n) for g in group]
        sds = [matrix(g["returns"], n, reduce=np.std) for g in group]
        ss = [matrix(g["successes"], n) for g in group]
        seeds = [g["config"]["seed"] for g in group]
        done = min(len(g["returns"]) for g in group)
        title = f"{seq} / {backend} / {method}"
        lines += [f"## {title}", "", f"Seeds: {seeds}; tasks: {group[0]['tasks']}; "
                  f"tasks finished: {done} of {n}.", ""]
        if partial.get((seq, backend, method)):
            lines += ["Not in these numbers until they finish every task: " + ", ".join(
                f"`{g['run_dir']}` (seed {g['config']['seed']}, {len(g['returns'])} of {n} "
                "tasks)" for g in partial[(seq, backend, method)]), ""]
        lines += [settings_line(group[0]["config"]), ""]
        mean_r = np.nanmean(np.stack(rs), axis=0)
        with_success = all(_has_success(g) for g in group)
        lines += ["Performance matrix R[i, j]: mean evaluation return on task j after training "
                  "task i (mean over seeds [bootstrap 90 % CI over seeds], +- the standard "
                  "deviation over episodes averaged over seeds; "
                  + ("success rate in brackets)." if with_success
                     else "these tasks define no success)."), ""]
        lines += ["| after \\ task | " + " | ".join(str(j) for j in range(n)) + " |",
                  "|---" * (n + 1) + "|"]
        for i in range(n):
            cells = []
            for j in range(n):
                vals = [r[i, j] for r in rs]
                m, lo, hi = M.bootstrap_ci(vals)
                sr = np.nanmean([s[i, j] for s in ss]) if np.isfinite(m) else np.nan
                sd = np.nanmean([x[i, j] for x in sds]) if np.isfinite(m) else np.nan
                cells.append(_fmt(m, lo, hi) + (
                    "" if not np.isfinite(sd) else f" +- {sd:.1f} ({sr:.0%})" if with_success
                    else f" +- {sd:.1f}"))
            lines.append(f"| {i} | " + " | ".join(cells) + " |")
        lines.append("")
        if done == n:
            final = [M.average_final(r) for r in rs]
            forg = [M.forgetting(r) for r in rs]
            ret = [M.retention(r) for r in rs]
            af = M.bootstrap_ci(final)
            lines += [f"Average final return: {_fmt(*af)}.", ""]
            if n > 1:
                lines += ["Forgetting per earlier task, R[j, j] - R[T-1, j]; normalised, "
                          "divided by |R[j, j]|; retention R[T-1, j] / R[j, j]:", ""]
                for j in range(n - 1):
                    f = M.bootstrap_ci([x[j] for x in forg])
                    rt = np.nanmean([x[j] for x in ret])
                    norm = np.nanmean([x[j] / abs(r[j, j]) if r[j, j] else np.nan
                                       for x, r in zip(forg, rs, strict=True)])
                    lines.append(f"- task {j}: {_fmt(*f)} (normalised {norm:.2f}, "
                                 f"retention {rt:.2f})")
                lines.append("")
            single = singles.get((seq, backend))
            if single and method != "single":
                r_single = np.nanmean(np.stack([matrix(g["returns"], n) for g in single]), 0)
                ft = np.nanmean(np.stack([M.forward_transfer(r, r_single) for r in rs]), 0)
                lines += ["Forward transfer against `single`, R[j, j] - R_single[j, j]: "
                          + ", ".join(f"{x:.1f}" for x in ft), ""]
            summary_rows.append((seq, backend, method, len(group), af,
                                 np.nanmean([np.nanmean(x) for x in forg])
                                 if n > 1 else np.nan))
        me = [matrix(g["model_error_1"], n) for g in group if g.get("model_error_1")]
        for key, label in (("model_error_1", "one-step"), ("model_error_h", "H-step")):
            mats = [matrix(g[key], n) for g in group if g.get(key)]
            if not mats:
                continue
            avg = np.nanmean(np.stack(mats), 0)
            lines += [f"Model error, {label} MSE on held-out transitions of task j after "
                      "training task i (mean over seeds):", "",
                      "| after \\ task | " + " | ".join(str(j) for j in range(n)) + " |",
                      "|---" * (n + 1) + "|"]
            lines += [f"| {i} | " + " | ".join(f"{v:.3g}" if np.isfinite(v) else "n/a"
                                               for v in avg[i]) + " |" for i in range(n)]
            lines.append("")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{seq}_{backend}_{method}").strip("_")
        fig, axes = plt.subplots(1, 3 if me else 2, figsize=(15 if me else 10, 4), dpi=90)
        _curve(axes[0], group, n)
        matrix_figure(axes[1], mean_r, "mean return")
        axes[1].set_title("R[i, j]")
        if me:
            matrix_figure(axes[2], np.nanmean(np.stack(me), 0), "one-step MSE")
            axes[2].set_title("model error")
        fig.suptitle(title)
        fig.tight_layout()
        png = f"{slug}.png"
        fig.savefig(os.path.join(out_dir, png))
        plt.close(fig)
        lines += [f"![{title}]({png})", ""]
    if summary_rows:  # one table per sequence and backend, its methods side by side
        summary = ["## Summary", ""]
        for seq, backend in sorted({(r[0], r[1]) for r in summary_rows}):
            summary += [f"### {seq} / {backend}", "",
                        "| method | seeds | average final return | mean forgetting |",
                        "|---|---|---|---|"]
            summary += [f"| {m} | {k} | {_fmt(*af)} | {f:.1f} |"
                        for q, b, m, k, af, f in summary_rows if (q, b) == (seq, backend)]
            summary.append("")
            same = {m: g for (q, b, m), g in groups.items() if (q, b) == (seq, backend)}
            summary += forgetting_compared(same)
            summary += continual_world(same)
        lines[head:head] = summary
    path = os.path.join(out_dir, "REPORT.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def forgetting_compared(groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown: each method's forgetting of every earlier task minus the reference method's
    (``hnet`` if there, else the first by name), with a 90 % bootstrap interval: over seeds
    when both have two or more, else over the evaluation episodes of the cells involved
    (pooled over seeds). Only methods whose every run finished every task take part."""
    done = {m: g for m, g in groups.items()
            if all(_finished(r) for r in g)}
    n = min((len(g[0]["tasks"]) for g in done.values()), default=0)
    if len(done) < 2 or n < 2 or any(len(g[0]["tasks"]) != n for g in done.values()):
        return []
    ref = "hnet" if "hnet" in done else sorted(done)[0]
    lines = [f"Forgetting of each earlier task j, R[j, j] - R[{n - 1}, j], of each method minus "
             f"`{ref}`'s (positive: it forgets more), with its 90 % bootstrap interval over "
             "seeds, or over evaluation episodes where a method has one seed; * marks an "
             "interval that excludes 0:", "",
             "| method | " + " | ".join(f"task {j}" for j in range(n - 1)) + " |",
             "|---" * n + "|"]
    forg = {m: [M.forgetting(matrix(r["returns"], n)) for r in g] for m, g in done.items()}
    for m in sorted(done):
        if m == ref:
            continue
        cells = []
        for j in range(n - 1):
            if len(done[m]) > 1 and len(done[ref]) > 1:  # over seeds
                value, lo, hi = M.bootstrap_contrast(
                    [[f[j] for f in forg[m]], [f[j] for f in forg[ref]]], [1.0, -1.0])
            else:  # over the evaluation episodes of the four cells involved
                value, lo, hi = M.bootstrap_contrast(
                    [_episodes(done[m], j, j), _episodes(done[m], n - 1, j),
                     _episodes(done[ref], j, j), _episodes(done[ref], n - 1, j)],
                    [1.0, -1.0, -1.0, 1.0])
            mark = " *" if lo < hi and (lo > 0 or hi < 0) else ""  # one sample: no interval
            cells.append(_fmt(value, lo, hi) + mark)
        lines.append(f"| {m} - {ref} | " + " | ".join(cells) + " |")
    return lines + [""]


def continual_world(groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown: Continual World's metrics (Wolczyk et al. 2021) per method, on the success
    rate S: average performance mean_j S[T-1, j]; forgetting mean_j S[j, j] - S[T-1, j]; and
    forward transfer, the mean over tasks of (AUC - AUC_ref) / (1 - AUC_ref), AUC being a
    task's success over its own training window (:func:`hypercrl.metrics.window_auc`) and the
    reference `single`'s (a fresh model per task, the same budget). Means over seeds with 90 %
    bootstrap intervals. Only methods whose every run finished every task, on tasks that
    define success, take part. Forward transfer needs training curves with success
    (``eval_every > 0``) and a `single` group; without them its columns are n/a."""
    done = {m: g for m, g in groups.items()
            if all(_finished(r) and _has_success(r) for r in g)}
    if not done or len({len(g[0]["tasks"]) for g in done.values()}) != 1:
        return []
    n = len(next(iter(done.values()))[0]["tasks"])

    def curves(runs: list[dict[str, Any]]) -> bool:
        """Every run has training curves (points before its task ends) with success."""
        return all(any("success" in row and not row.get("final") for row in r["eval_curve"])
                   for r in runs)

    single = next((g for m, g in done.items() if m.split(" ")[0] == "single"), None)
    ref = ([float(np.nanmean([M.window_auc(r["eval_curve"], j) for r in single]))
            for j in range(n)] if single and curves(single) else None)

    def fmt(mean: float, lo: float, hi: float) -> str:
        if not np.isfinite(mean):
            return "n/a"
        return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]" if hi > lo else f"{mean:.2f}"

    lines = ["Continual World's metrics on the success rate (average performance after all "
             "tasks; forgetting, mean over earlier tasks of S[j, j] - S[T-1, j]; forward "
             "transfer, mean over tasks of (AUC - AUC_ref) / (1 - AUC_ref) with the AUC over "
             "each task's own training window, against `single`; 90 % interval over seeds):",
             "", "| method | seeds | average performance | forgetting | forward transfer "
             "| forward transfer per task |", "|---|---|---|---|---|---|"]
    for m in sorted(done):
        runs = done[m]
        ss = [matrix(r["successes"], n) for r in runs]
        perf = M.bootstrap_ci([M.average_final(s) for s in ss])
        forg = (M.bootstrap_ci([float(np.mean(M.forgetting(s))) for s in ss]) if n > 1
                else (float("nan"),) * 3)
        ft, per_task = (float("nan"),) * 3, "n/a"
        if ref is not None and curves(runs):
            fts = np.array([[M.cw_forward_transfer(M.window_auc(r["eval_curve"], j), ref[j])
                             for j in range(n)] for r in runs])
            ft = M.bootstrap_ci(np.nanmean(fts, axis=1))
            per_task = ", ".join(f"{x:.2f}" for x in np.nanmean(fts, axis=0))
        lines.append(f"| {m} | {len(runs)} | {fmt(*perf)} | {fmt(*forg)} | {fmt(*ft)} "
                     f"| {per_task} |")
    if ref is not None:
        lines += ["", "AUC_ref per task (`single`): " + ", ".join(f"{x:.2f}" for x in ref)]
    else:
        lines += ["", "Forward transfer needs training curves (`--set eval_every=N`) of every "
                  "run and `single` among the methods."]
    return lines + [""]


def _episodes(runs: list[dict[str, Any]], i: int, j: int) -> list[float]:
    """The evaluation returns of cell R[i, j] of every run, pooled."""
    return [x for r in runs for x in r["returns"][str(i)][j]]


def _curve(ax, group: list[dict[str, Any]], n: int) -> None:
    """Return per task over env steps: training episodes (thin, first seed) and evaluations
    (markers, mean over seeds), with task boundaries."""
    for j in range(n):
        episodes = [e for e in group[0]["train_episodes"] if e["task"] == j]
        if episodes:
            ax.plot([e["env_steps"] for e in episodes], [e["return"] for e in episodes],
                    lw=0.7, alpha=0.5, color=f"C{j}")
        xs, ys = defaultdict(list), None
        for g in group:
            for row in g["eval_curve"]:
                if row["task"] == j:
                    xs[row["env_steps"]].append(row["return"])
        if xs:
            steps = sorted(xs)
            ys = [np.mean(xs[s]) for s in steps]
            ax.plot(steps, ys, marker="o", color=f"C{j}", label=f"task {j} (evaluation)")
    cfg = group[0]["config"]
    per_task = cfg["init_random_steps"] + cfg["mpc_steps"]
    for i in range(1, n):
        ax.axvline(i * per_task, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
