"""Command line: ``hypercrl run|resume|eval|video|report|bench``.

Only this module and ``launch/`` wire ``hypercrl`` to the simulators in ``envs``.
Errors in what a user asked for (unknown method, sequence or backend, a bad ``--set``, a
missing or corrupt checkpoint, a run directory holding another run, a path that is a file or
cannot be written) and files that cannot be written during a run print one line naming the
field or the path and exit with status 2; nothing is overwritten, and a run that fails before
it starts leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import sys

from hypercrl.cpu import configure as configure_cpu
from hypercrl.io import one_line
from hypercrl.rundir import (
    STARTED,
    check_new_run_dir,
    check_no_run_files,
    check_not_locked,
    check_run_dir,
    config_diff,
    flat_diff,
    missing_ancestor,
    note_other_machine,
    read_config,
    remove_new,
    run_lock,
    versions,
)

# bench name -> module whose main(argv) prints the benchmark's JSON
BENCHES = {
    "train": "hypercrl.bench.train",
    "plan": "hypercrl.bench.plan",
    "env": "envs.bench",
    "init": "hypercrl.bench.init",
    "loop": "hypercrl.bench.loop",
    "budget": "hypercrl.bench.budget",
    "eval": "hypercrl.bench.evaluation",
    "sweep": "hypercrl.bench.sweep",
    "infer": "hypercrl.bench.infer",
    "cl": "hypercrl.bench.cl",
}
# what a command runs when not told: the families and backends themselves live in envs
DEFAULT_SEQUENCE, DEFAULT_BACKEND = "push", "mujoco"


def _sequence(name: str, backend: str):
    import envs

    return envs.sequence(name, backend=backend)


def _check_method(method: str) -> None:
    from hypercrl.learners import learner_class

    learner_class(method)  # ValueError listing the known methods


def resolve_config(sequence: str, backend: str, method: str, profile: str,
                   sets: list[str] | None = None, **values):
    """The resolved RunConfig of a run; every bad value is a ValueError naming it."""
    from hypercrl.config import from_sequence, parse_set, profile_planner, select_arch

    method, sets = select_arch(method, sets)
    _check_method(method)
    seq = _sequence(sequence, backend)
    planner = profile_planner(seq.family, profile)  # the one the --set keys may name
    return from_sequence(seq, profile, method, sets=parse_set(sets or [], method, planner),
                         **values)


def default_run_dir(cfg) -> str:
    return os.path.join("runs", f"{cfg.sequence}-{cfg.backend}-{cfg.method}-s{cfg.seed}-"
                                f"{cfg.profile}")


def start_run(cfg, run_dir: str | None = None, quiet: bool = False) -> str:
    """Create the run directory, write config and versions, run; returns the run dir.

    If the run cannot be set up (nothing trained yet), what this call created is removed:
    the run directory if it made it, else the files it wrote into it."""
    from hypercrl.loop import ContinualRun

    seq = _sequence(cfg.sequence, cfg.backend)
    run_dir = run_dir or default_run_dir(cfg)
    check_new_run_dir(run_dir, cfg)
    created = missing_ancestor(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    before = set(os.listdir(run_dir))
    with run_lock(run_dir):
        check_no_run_files(run_dir, cfg)  # again: another process may have begun one here
        run = None
        try:
            with open(os.path.join(run_dir, "config.json"), "w", encoding="utf-8") as f:
                f.write(cfg.to_json())
            with open(os.path.join(run_dir, "versions.json"), "w", encoding="utf-8") as f:
                json.dump(versions(), f, indent=2)
            run = ContinualRun(cfg, seq, run_dir, quiet=quiet)
            run.save_checkpoint()
        except BaseException:
            if run is not None:
                with contextlib.suppress(Exception):
                    run.close()
            remove_new(run_dir, created, before)
            raise
        _run_interruptible(run, run_dir)
    return run_dir


def resume_run(run_dir: str, quiet: bool = False) -> str:
    """Continue a run from its last checkpoint, holding the run's lock (:func:`run_lock`)."""
    from hypercrl.loop import ContinualRun

    cfg = read_config(run_dir)
    check_not_locked(run_dir)  # before the checkpoint: one being begun may not be there yet
    if _unfinished_state(run_dir, cfg) is None:  # finished: nothing written, the lock included
        return run_dir
    with run_lock(run_dir):
        state = _unfinished_state(run_dir, cfg)  # again: another process may have gone on
        if state is None:
            return run_dir
        run = ContinualRun(cfg, _sequence(cfg.sequence, cfg.backend), run_dir, quiet=quiet)
        run.load_state_dict(state)
        note_other_machine(run_dir, state["progress"]["task"])
        _run_interruptible(run, run_dir)
    return run_dir


def _unfinished_state(run_dir: str, cfg) -> dict | None:
    """The run's checkpoint, checked against its config; None, saying so, when the run has
    finished."""
    from hypercrl.config import fill_defaults, select_tasks
    from hypercrl.loop import RunError, load_checkpoint

    state = load_checkpoint(run_dir)
    stored = json.loads(json.dumps(state["config"]))
    if flat_diff(fill_defaults(stored), fill_defaults(json.loads(cfg.to_json()))):
        raise RunError(f"{run_dir}: the checkpoint's config does not match config.json")
    seq = _sequence(cfg.sequence, cfg.backend)
    n = len(select_tasks(cfg, seq).tasks)  # ContinualRun selects them from the whole sequence
    if state["progress"]["task"] >= n:
        print(f"{run_dir}: finished ({n} of {n} tasks); nothing to resume", file=sys.stderr)
        return None
    return state


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``run_dir`` names the run to resume."""

    def __init__(self, run_dir: str) -> None:
        super().__init__(run_dir)
        self.run_dir = run_dir


def _run_interruptible(run, run_dir: str) -> None:
    from hypercrl.api import DivergenceError
    from hypercrl.loop import RunError

    try:
        run.run()
    except KeyboardInterrupt:
        raise Interrupted(run_dir) from None
    except DivergenceError as err:
        raise RunError(f"{run_dir}: {err} (after {run.progress.step + 1} env steps of task "
                       f"{run.progress.task}); the last good checkpoint is kept") from None
    except OSError as err:  # the run directory turned read-only, the disk filled up, ...
        with contextlib.suppress(Exception):
            run.close()
        raise RunError(f"{one_line(err)}; the run stopped at its last checkpoint: continue "
                       f"with `hypercrl resume {run_dir}` once it can be written") from None


def run_trial(config: str, run_dir: str, threads: int | None = None,
              quiet: bool = True) -> dict:
    """One trial of a sweep, in this process (a Ray worker): start the run in ``run_dir``,
    or resume it from its checkpoint (``quiet``: no progress bars). Returns its wall seconds,
    whether it resumed, and its final returns per task."""
    import time

    from hypercrl.config import RunConfig
    from hypercrl.loop import CHECKPOINT

    configure_cpu()
    if threads:
        import torch

        torch.set_num_threads(threads)
    cfg = RunConfig.from_dict(json.loads(config))
    start = time.perf_counter()
    resumed = os.path.isfile(os.path.join(run_dir, CHECKPOINT))
    if resumed:
        resume_run(run_dir, quiet=quiet)
    else:
        if os.path.isdir(run_dir):  # killed before its first checkpoint: nothing was trained
            check_not_locked(run_dir)  # unless a run of this folder is still going
            remove_new(run_dir, None, set(os.listdir(run_dir)) - set(STARTED))
        start_run(cfg, run_dir, quiet=quiet)
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        returns = json.load(f)["returns"]
    final = returns[str(len(returns) - 1)] if returns else []
    return {"seconds": time.perf_counter() - start, "resumed": resumed,
            "returns": [sum(r) / len(r) for r in final]}


def sweep(sequences: list[str], backends: list[str], methods: list[str], seeds: list[int],
          profile: str = "quick", sets: list[str] | None = None, out: str | None = None,
          video: bool = False, engine: str = "ray", **options):
    """Every (sequence, backend, method, seed) as one run in ``out/<sequence>-<backend>-
    <method>-s<seed>``, then ``out/REPORT.md``. Every config and every existing run is
    checked before anything runs. ``options``: those of :func:`hypercrl.sweep.run_sweep`."""
    from hypercrl import sweep as sw
    from hypercrl.config import select_arch
    from hypercrl.loop import RunError

    # hnet_arch names the method: trials and run directories carry the variant's name
    methods = list(dict.fromkeys(select_arch(m, sets)[0] for m in methods))
    sets = select_arch("hnet", sets)[1]
    trials = sw.grid(sequences, backends, methods, seeds)
    if not trials:
        raise ValueError("nothing to run: give at least one sequence, backend, method and seed")
    extra = {"video": True} if video else {}
    configs = {t: resolve_config(t.sequence, t.backend, t.method, profile, sets, seed=t.seed,
                                 **extra) for t in trials}
    out = out or os.path.join("runs", "sweep-" + "-".join(dict.fromkeys(sequences)) + f"-{profile}")
    check_run_dir(out)
    sweep_settings = sw.settings(profile, sets, video)
    known = set(sw.check_settings(out, sweep_settings))
    changed: dict = {}  # trial -> keys in which today's defaults resolve it otherwise
    unbegun = []  # trials whose run directory holds no run yet
    for t, cfg in configs.items():
        run_dir = os.path.join(out, t.name)
        diff = config_diff(run_dir, cfg)
        if diff is None:
            check_new_run_dir(run_dir, cfg)  # no other run's files left there to overwrite
            unbegun.append(t.name)
        elif diff and t in known:
            # the sweep's own settings match (checked above), so the package's defaults
            # changed since this trial began: it continues as it began
            changed[t] = diff
            configs[t] = read_config(run_dir)
        elif diff:
            raise RunError(f"{run_dir} holds a run with another config (differs in {diff}); "
                           f"choose another --out, or rerun with the settings of {out}")
        check_run_dir(run_dir)
    if changed:
        _continue_as_begun(out, changed, unbegun)
    return sw.run_sweep(out, {t: cfg.to_json() for t, cfg in configs.items()},
                        sweep_settings, run_trial, engine=engine, **options)


def _continue_as_begun(out: str, changed: dict, unbegun: list[str]) -> None:
    """Trials of ``out`` that began under other package defaults (``changed``: trial ->
    differing keys) continue with their own config, said on stderr; the ``unbegun`` ones
    would be resolved with today's defaults and not match them: RunError, run nothing."""
    from hypercrl.loop import RunError

    if unbegun:
        keys = sorted({k for diff in changed.values() for k in diff})
        raise RunError(f"{out}: this version's defaults differ from those its trials began "
                       f"with (in {keys}), so its trials not yet begun ({', '.join(unbegun)}) "
                       "would not match them; start those in another --out")
    for t, diff in changed.items():
        print(f"sweep: {os.path.join(out, t.name)} continues with the config it began with "
              f"(this version's defaults differ in {diff})", file=sys.stderr)


def run_comparison(sequence: str, methods: list[str], seeds: list[int], profile: str = "quick",
                   backend: str = DEFAULT_BACKEND, sets: list[str] | None = None,
                   out: str | None = None, video: bool = False, quiet: bool = False,
                   **options) -> str:
    """Every (method, seed) on a sequence through the sweep (on Ray when it is installed,
    else one after another in this process), then the report; returns the report's path.

    Run directories go to ``out/<sequence>-<backend>-<method>-s<seed>``; the report to
    ``out/REPORT.md``. ``backend`` may name several, comma-separated."""
    from hypercrl.loop import RunError
    from hypercrl.sweep import INSTALL, ray_available

    engine = "ray" if ray_available() else "serial"
    if engine == "serial" and options.get("address"):
        raise RunError(f"--address needs Ray: {INSTALL}")
    if engine == "serial" and not quiet:
        print(f"Ray is not installed: the runs go one after another ({INSTALL} to run them "
              "in parallel)", file=sys.stderr)
    backends = [b for b in backend.split(",") if b]
    out = out or os.path.join("runs", f"{sequence}-{'-'.join(backends)}-{profile}")
    result = sweep([sequence], backends, methods, seeds, profile, sets, out, video, engine,
                   quiet=quiet, **options)
    if result.failed:
        raise RunError(_failures(result))
    return result.report


def _failures(result) -> str:
    names = ", ".join(f"{name} ({err})" for name, err in sorted(result.failed.items()))
    return (f"{len(result.failed)} trial(s) of {result.out} failed: {names}; the others "
            "finished; re-run the same command to try the failed ones again")


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None,
                        help="a Ray cluster to join: auto, or HOST:PORT of its head "
                        "(default: start Ray on this machine)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of a Ray started on this machine (default: all)")
    parser.add_argument("--cpus-per-trial", type=float, default=1,
                        help="CPUs each trial asks for; its torch threads (default 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=0,
                        help="GPUs each trial asks for (default 0)")
    parser.add_argument("--max-retries", type=int, default=1,
                        help="times a failed trial is tried again, resuming its checkpoint "
                        "(default 1)")


def _sweep_options(args: argparse.Namespace) -> dict:
    return {"address": args.address, "num_cpus": args.num_cpus,
            "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial,
            "max_retries": args.max_retries}


def launch_main(sequence: str, argv: list[str] | None = None) -> int:
    """The command line of ``launch/<sequence>.py``."""
    configure_cpu()
    parser = argparse.ArgumentParser(
        prog=f"launch/{sequence}.py",
        description=f"Compare continual-learning methods on the {sequence} sequence "
        "(through `hypercrl sweep`: on Ray when it is installed).",
    )
    from hypercrl.learners import DEFAULT_COMPARISON

    parser.add_argument("--methods", default=",".join(DEFAULT_COMPARISON))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--profile", default="quick", help="paper, quick or smoke")
    parser.add_argument("--backend", default=DEFAULT_BACKEND,
                        help="mujoco, pybullet, or both: mujoco,pybullet")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="folder for the runs and the report")
    parser.add_argument("--video", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    _add_sweep_options(parser)
    args = parser.parse_args(argv)
    try:
        seeds = _seeds(args.seeds)
        path = run_comparison(sequence, [m for m in args.methods.split(",") if m], seeds,
                              args.profile, args.backend, args.set, args.out, args.video,
                              args.quiet, **_sweep_options(args))
    except (ValueError, OSError) as err:
        print(f"{parser.prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: {SWEEP_INTERRUPTED}", file=sys.stderr)
        return 130
    print(path)
    return 0


def _seeds(text: str) -> list[int]:
    from hypercrl.bench.argtypes import int_list

    try:
        return int_list(text)
    except argparse.ArgumentTypeError as err:
        raise ValueError(f"--seeds {err}") from None


def _interrupted(err: BaseException) -> str:
    where = getattr(err, "run_dir", None)
    hint = (f"; continue from its last checkpoint with `hypercrl resume {where}`"
            if where else "")
    return f"interrupted{hint}"


def _run(args: argparse.Namespace) -> int:
    extra = {"video": True} if args.video else {}
    cfg = resolve_config(args.sequence, args.backend, args.method, args.profile, args.set,
                         seed=args.seed, **extra)
    if args.dry_run:  # what the run would refuse, the dry run refuses too
        check_new_run_dir(args.run_dir or default_run_dir(cfg), cfg)
        print(cfg.to_json())
        return 0
    run_dir = start_run(cfg, args.run_dir, args.quiet)
    print(run_dir)
    return 0


def _resume(args: argparse.Namespace) -> int:
    print(resume_run(args.run_dir, args.quiet))
    return 0


def load_saved_run(run_dir: str, after: int | None, cfg=None):
    """A ContinualRun whose learner holds what it saved after task ``after`` (the last one
    if None), loaded through the learner's own ``load``; ``cfg`` replaces the run's config
    (e.g. another planner or seed)."""
    from hypercrl.config import select_tasks
    from hypercrl.learners import learner_class
    from hypercrl.loop import ContinualRun, RunError, saved_model_path, saved_models

    cfg = dataclasses.replace(cfg or read_config(run_dir), video=False)
    suffix = learner_class(cfg.method).saved_suffix
    saved = saved_models(run_dir, suffix)
    if not saved:
        raise RunError(f"{run_dir}: no saved model (model_after<i>{suffix}); has a task ended?")
    after = saved[-1] if after is None else after
    if after not in saved:
        raise RunError(f"{run_dir}: no model saved after task {after}; saved: {saved}")
    seq = _sequence(cfg.sequence, cfg.backend)
    tasks = len(select_tasks(cfg, seq).tasks)
    if after >= tasks:
        raise RunError(f"{run_dir}: {os.path.basename(saved_model_path(run_dir, after, suffix))}"
                       f" is not of this run, which has {tasks} tasks (left by another run?)")
    run = ContinualRun(cfg, seq, run_dir, quiet=True, tensorboard=False)
    run.learner.load(saved_model_path(run_dir, after, suffix))
    return run, after


# what ``hypercrl eval --set`` may change: how a saved model is evaluated, not what it is
EVAL_KEYS = ("task_free_eval", "infer_window", "infer_every", "infer_dims", "infer_change")


def eval_config(run_dir: str, sets: list[str]):
    """The run's config with ``sets`` (``KEY=VALUE``: :data:`EVAL_KEYS` and the planner's
    options) applied and validated; a key that would change the saved model is refused."""
    from hypercrl.config import RunConfig, check_sequence, parse_set, route
    from hypercrl.learners import learner_class

    cfg = read_config(run_dir)
    if not sets:
        return cfg
    data = dataclasses.asdict(cfg)
    uses_planner = learner_class(cfg.method).uses_planner
    for key, value in parse_set(sets, cfg.method, cfg.planner).items():
        home, name = route(key, cfg.method, cfg.planner, uses_planner)
        if home == "planner":
            data["planner_options"][name] = value
        elif home == "run" and name in EVAL_KEYS:
            data[name] = value
        else:
            raise ValueError(f"--set {key}: eval changes only how the saved model is "
                             f"evaluated: {', '.join(EVAL_KEYS)} and the planner's options")
    cfg = RunConfig.from_dict(data)
    check_sequence(cfg, _sequence(cfg.sequence, cfg.backend))
    return cfg


def _eval(args: argparse.Namespace) -> int:
    from hypercrl.loop import RunError

    if args.episodes is not None and args.episodes < 1:
        raise RunError(f"--episodes must be >= 1, got {args.episodes}")
    cfg = eval_config(args.run_dir, args.set)
    episodes = args.episodes or cfg.eval_episodes  # the run's own: its R[i, j] again
    run, after = load_saved_run(args.run_dir, args.after, cfg)
    out = {"run_dir": args.run_dir, "after": after, "episodes": episodes, "tasks": {}}
    tasks = list(range(after + 1))
    for j, (returns, successes, usage) in zip(tasks, run.evaluate_tasks(tasks, episodes),
                                               strict=True):
        rate = sum(successes) / len(successes) if run.has_success else None
        out["tasks"][j] = {"returns": returns, "success_rate": rate}
        if usage:  # task-free: the steps planned with each seen task's model
            out["tasks"][j]["task_usage"] = usage
    print(json.dumps(out, indent=2))
    return 0


def _video(args: argparse.Namespace) -> int:
    from hypercrl.loop import RunError
    from hypercrl.video import check_video_path

    if args.frames < 1:
        raise RunError(f"--frames {args.frames}: a strip needs at least 1 frame")
    if args.out is not None:
        check_video_path(args.out)  # before loading the model and rendering
    run, after = load_saved_run(args.run_dir, args.after)
    if not 0 <= args.task <= after:
        raise RunError(f"--task {args.task}: the model after task {after} knows tasks "
                       f"0..{after}")
    path = args.out or os.path.join(run.video_dir, f"task{args.task}_after{after}.mp4")
    returns, _ = run.evaluate_task(args.task, 1, video_path=path, strip_frames=args.frames)
    print(json.dumps({"video": path, "return": returns[0]}))
    return 0


SWEEP_INTERRUPTED = ("interrupted; run the same command again to continue (finished trials "
                     "are kept, the others resume from their checkpoints)")


def _sweep(args: argparse.Namespace) -> int:
    from hypercrl.sweep import INSTALL, SweepError, ray_available

    if not ray_available():  # before any config is resolved: one line, nothing run
        raise SweepError(f"sweep needs Ray: {INSTALL}")
    try:
        result = sweep(_names(args.sequences, "--sequences"),
                       _names(args.backends, "--backends"), _names(args.methods, "--methods"),
                       _seeds(args.seeds), args.profile, args.set, args.out, args.video,
                       quiet=args.quiet, **_sweep_options(args))
    except KeyboardInterrupt:
        print(f"hypercrl: {SWEEP_INTERRUPTED}", file=sys.stderr)
        return 130
    if result.report:
        print(result.report)
    if result.failed:
        print(f"hypercrl: {_failures(result)}", file=sys.stderr)
        return 1
    return 0


def _names(text: str, flag: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise ValueError(f"{flag} {text!r}: expected names separated by commas")
    return names


def _report(args: argparse.Namespace) -> int:
    from hypercrl.report import kept_runs, write_report
    from hypercrl.sweep import SWEEP_FILE, trial_dirs

    run_dirs = []
    for d in args.run_dirs:  # a sweep's folder, or a report's, stands for its runs
        if os.path.isfile(os.path.join(d, SWEEP_FILE)):
            run_dirs += trial_dirs(d)
        else:
            run_dirs += kept_runs(d) or [d]
    out = args.out or (args.run_dirs[0] if len(args.run_dirs) == 1 else "report")
    print(write_report(run_dirs, out))
    return 0


def _bench(args: argparse.Namespace, rest: list[str]) -> int:
    if args.name is None:  # `hypercrl bench [--help]`: the list of benchmarks
        if not _wants_help(rest):
            args.bench_parser.error(f"choose a benchmark: {', '.join(sorted(BENCHES))}")
        args.bench_parser.print_help()
        return 0
    module = importlib.import_module(BENCHES[args.name])
    return int(module.main(rest) or 0)


def _wants_help(rest: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in rest)


def build_parser() -> argparse.ArgumentParser:
    from hypercrl.learners import DEFAULT_METHOD, all_methods

    parser = argparse.ArgumentParser(prog="hypercrl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train a method through a task sequence")
    run.add_argument("--sequence", default=DEFAULT_SEQUENCE,
                     help="task family: push, door, halfcheetah")
    run.add_argument("--backend", default=DEFAULT_BACKEND, help="mujoco or pybullet")
    run.add_argument("--method", default=DEFAULT_METHOD,
                     help=f"one of: {', '.join(all_methods())}")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--profile", default="quick", help="paper, quick or smoke")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="a run key, or an option of the method or the planner "
                     "(method.KEY, planner.KEY); repeatable")
    run.add_argument("--run-dir", default=None)
    run.add_argument("--video", action="store_true", help="record evaluation videos")
    run.add_argument("--quiet", action="store_true")
    run.add_argument("--dry-run", action="store_true",
                     help="print the fully resolved config (JSON) and exit without running")
    run.set_defaults(func=_run)

    resume = sub.add_parser("resume", help="continue a run from its last checkpoint")
    resume.add_argument("run_dir")
    resume.add_argument("--quiet", action="store_true")
    resume.set_defaults(func=_resume)

    ev = sub.add_parser("eval", help="evaluate a saved model on every task it has seen")
    ev.add_argument("run_dir")
    ev.add_argument("--after", type=int, default=None, help="the model saved after this task")
    ev.add_argument("--episodes", type=int, default=None,
                    help="episodes per task (default: the run's eval_episodes, so that the "
                    "returns are the run's own R[i, j] for the model after its last task)")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="evaluate otherwise: " + ", ".join(EVAL_KEYS)
                    + " or a planner option (e.g. task_free_eval=true)")
    ev.set_defaults(func=_eval)

    video = sub.add_parser("video", help="render a rollout of a saved model to mp4")
    video.add_argument("run_dir")
    video.add_argument("--task", type=int, required=True)
    video.add_argument("--after", type=int, default=None)
    video.add_argument("--out", default=None,
                       help="the mp4 to write, or a .png: a strip of --frames frames")
    video.add_argument("--frames", type=int, default=6,
                       help="frames of a .png strip, evenly spaced (default 6)")
    video.set_defaults(func=_video)

    sw = sub.add_parser("sweep", help="methods x seeds x sequences x backends on Ray, "
                        "resumable, one report")
    sw.add_argument("--sequences", default=DEFAULT_SEQUENCE, help="e.g. push,door,halfcheetah")
    sw.add_argument("--backends", default=DEFAULT_BACKEND, help="e.g. mujoco,pybullet")
    sw.add_argument("--methods", default=DEFAULT_METHOD, help="e.g. hnet,finetune,coreset")
    sw.add_argument("--seeds", default="0", help="e.g. 0,1,2")
    sw.add_argument("--profile", default="quick", help="paper, quick or smoke")
    sw.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="as for `hypercrl run`, for every trial; repeatable")
    sw.add_argument("--out", default=None, help="the sweep's folder (default "
                    "runs/sweep-SEQUENCES-PROFILE); the same command again continues it")
    sw.add_argument("--video", action="store_true", help="record evaluation videos")
    sw.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_sweep_options(sw)
    sw.set_defaults(func=_sweep)

    report = sub.add_parser("report", help="Markdown summary and plots of runs")
    report.add_argument("run_dirs", nargs="+",
                        help="run directories, a sweep's folder, or an earlier report's folder "
                             "(its kept metrics)")
    report.add_argument("--out", default=None, help="output folder")
    report.set_defaults(func=_report)

    # no -h here: `hypercrl bench NAME --help` reaches the benchmark's own parser
    bench = sub.add_parser("bench", help="run a benchmark and print JSON", add_help=False,
                           usage="%(prog)s {" + ",".join(sorted(BENCHES)) + "} [options]",
                           epilog="`hypercrl bench NAME --help` lists the options of NAME")
    bench.add_argument("name", nargs="?", choices=sorted(BENCHES), help="which benchmark")
    bench.set_defaults(func=_bench, bench_parser=bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # reused pages for large tensors, no denormals (hypercrl/cpu.py)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "bench" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "bench":
            return args.func(args, rest)
        return args.func(args)
    except (ValueError, OSError) as err:  # RunError included; OSError: a path, its problem
        print(f"hypercrl: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"hypercrl: {_interrupted(err)}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
