"""Sweeps: a grid of runs, one per (sequence, backend, method, seed), each an ordinary run
directory under one folder, executed as Ray tasks on this machine or a cluster, then one
report over all of them.

Re-running the same command continues a sweep: finished trials are skipped, trials killed
mid-run resume from their last checkpoint, and failed ones are tried again, each up to
``max_retries`` more times per command. The folder's ``sweep.json`` records the settings
every trial shares (profile, ``--set`` values, video); a command with other settings is
refused, naming the differences. The grid itself may grow: a command with more seeds adds
trials to the sweep.

This module knows no simulator: the caller (``hypercrl.cli``) resolves each trial's config
and passes the function that runs one trial in a worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from hypercrl.io import file_lock, one_line, write_json

SWEEP_FILE = "sweep.json"
LOCKS = ".locks"  # one lock file per trial, held while it runs
FORMAT = "hypercrl.sweep"
FORMAT_VERSION = 1
INSTALL = "pip install 'hypercrl[sweep]'"
# how the sweep starts Ray: no dashboard, quiet, workers' output kept in Ray's log files
RAY_INIT = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}

# runner(config_json, run_dir, threads, quiet) -> {"seconds": float, "resumed": bool,
# "returns": [float, ...]}:
# starts or resumes one run in the calling process (a Ray worker, or this one)
Runner = Callable[[str, str, int | None, bool], dict[str, Any]]


class SweepError(ValueError):
    """A sweep that cannot start: its folder holds another sweep, or Ray is missing."""


@dataclasses.dataclass(frozen=True, order=True)
class Trial:
    """One run of a sweep; its run directory is ``OUT/<name>``."""

    sequence: str
    backend: str
    method: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.sequence}-{self.backend}-{self.method}-s{self.seed}"


def grid(sequences: Sequence[str], backends: Sequence[str], methods: Sequence[str],
         seeds: Sequence[int]) -> list[Trial]:
    """Every combination, in that nesting order; duplicates in a list count once."""
    uniq = lambda xs: list(dict.fromkeys(xs))  # noqa: E731
    return [Trial(q, b, m, s) for q in uniq(sequences) for b in uniq(backends)
            for m in uniq(methods) for s in uniq(seeds)]


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


# --- the sweep's folder ---------------------------------------------------------------------
def settings(profile: str, sets: Sequence[str] | None, video: bool) -> dict[str, Any]:
    """What every trial of a sweep shares; ``--set`` values keyed by name (the last wins)."""
    table: dict[str, str] = {}
    for item in sets or []:
        key, _, value = item.partition("=")
        table[key.strip()] = value.strip()
    return {"profile": profile, "set": dict(sorted(table.items())), "video": bool(video)}


def read_manifest(out: str) -> dict[str, Any] | None:
    """``OUT/sweep.json``, None if there is none; SweepError if it is not a sweep's."""
    path = os.path.join(out, SWEEP_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} file")
        trials = [Trial(**t) for t in data["trials"]]
        return {"settings": data["settings"], "trials": trials}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise SweepError(f"{path}: unreadable sweep file ({err})") from None


def _canonical(text: str | None) -> Any:
    """A ``--set`` value as compared between a sweep's runs: numbers by value (``1e-3`` is
    ``0.001``), booleans in any case, lists item by item; anything else as written."""
    if text is None:
        return None
    items = []
    for item in text.split(","):
        item = item.strip()
        try:
            items.append(float(item))
        except ValueError:
            items.append(item.lower() if item.lower() in ("true", "false") else item)
    return tuple(items)


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences, e.g. ``--profile (smoke in the sweep, quick now)``."""
    out = []
    if old.get("profile") != new["profile"]:
        out.append(f"--profile ({old.get('profile')} in the sweep, {new['profile']} now)")
    old_set, new_set = old.get("set", {}), new["set"]
    for key in sorted(set(old_set) | set(new_set)):
        if _canonical(old_set.get(key)) != _canonical(new_set.get(key)):
            was = old_set.get(key, "unset")
            now = new_set.get(key, "unset")
            out.append(f"--set {key} ({was} in the sweep, {now} now)")
    if bool(old.get("video")) != new["video"]:
        out.append(f"--video ({'on' if old.get('video') else 'off'} in the sweep, "
                   f"{'on' if new['video'] else 'off'} now)")
    return out


def check_settings(out: str, sweep_settings: dict[str, Any]) -> list[Trial]:
    """The trials of the sweep in ``out`` (none if there is no sweep yet); SweepError naming
    the differences if that sweep has other settings."""
    manifest = read_manifest(out)
    if manifest is None:
        return []
    diff = settings_diff(manifest["settings"], sweep_settings)
    if diff:
        raise SweepError(f"{out} holds a sweep with other settings: {'; '.join(diff)}; "
                         "re-run with its settings or choose another --out")
    return manifest["trials"]


def write_manifest(out: str, sweep_settings: dict[str, Any], trials: list[Trial]) -> None:
    path = os.path.join(out, SWEEP_FILE)
    data = {"format": FORMAT, "version": FORMAT_VERSION, "settings": sweep_settings,
            "trials": [dataclasses.asdict(t) for t in trials]}
    write_json(path, data, indent=2)


def add_to_manifest(out: str, sweep_settings: dict[str, Any], trials: Sequence[Trial]) -> None:
    """Add ``trials`` to ``OUT/sweep.json``, keeping every trial already listed there. The
    read and the write hold a lock on ``OUT/.locks/sweep.json``: drivers started side by side
    on one ``--out`` (one per method, say) each add theirs, none overwrites another's."""
    os.makedirs(os.path.join(out, LOCKS), exist_ok=True)
    with file_lock(os.path.join(out, LOCKS, SWEEP_FILE)):
        known = check_settings(out, sweep_settings)
        write_manifest(out, sweep_settings, known + [t for t in trials if t not in known])


def trial_dirs(out: str) -> list[str]:
    """The run directories of the sweep in ``out`` that finished at least one task."""
    manifest = read_manifest(out)
    if manifest is None:
        raise SweepError(f"{out}: no {SWEEP_FILE} (not a sweep folder)")
    return [d for d in (os.path.join(out, t.name) for t in manifest["trials"])
            if os.path.isfile(os.path.join(d, "metrics.json"))]


def run_position(run_dir: str) -> tuple[int, int, int, int]:
    """(tasks ended, tasks, env steps collected, env steps of the whole run) of the run in
    ``run_dir`` by its metrics, which a run rewrites at every checkpoint; zeros without
    them."""
    try:
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        ended, tasks = len(metrics["returns"]), len(metrics["tasks"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0, 0, 0
    try:
        cfg = metrics["config"]
        total = tasks * (int(cfg["init_random_steps"]) + int(cfg["mpc_steps"]))
        episodes = metrics.get("train_episodes") or [{"env_steps": 0}]
        steps = int(episodes[-1]["env_steps"])
    except (KeyError, TypeError, ValueError, IndexError):
        total = steps = 0
    return ended, tasks, steps, total


def tasks_ended(run_dir: str) -> tuple[int, int]:
    """(tasks ended, tasks) of the run in ``run_dir`` by its metrics; (0, 0) without them."""
    return run_position(run_dir)[:2]


def finished(run_dir: str) -> bool:
    """Whether the run's metrics hold a performance-matrix row for every task."""
    ended, tasks = tasks_ended(run_dir)
    return ended == tasks > 0


# --- executing trials -----------------------------------------------------------------------
class _Serial:
    """Runs trials one at a time in this process (the launch scripts without Ray)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.queue: list[tuple[Any, tuple]] = []

    def slots(self) -> int:
        return 1

    def submit(self, key: Any, lock: str, *args: Any) -> None:
        self.queue.append((key, (self.runner, lock, *args)))

    def next_result(self, tick: Callable[[], None] | None = None) -> tuple[Any, bool, Any]:
        key, args = self.queue.pop(0)
        try:
            return key, True, _run_locked(*args)
        except (ValueError, OSError, RuntimeError) as err:  # RunError, DivergenceError, ...
            return key, False, err

    def close(self) -> None:
        pass


class _Ray:
    """Runs trials as Ray tasks, each asking for its CPUs (and GPUs)."""

    def __init__(self, runner: Runner, *, address: str | None, num_cpus: int | None,
                 cpus_per_trial: float, gpus_per_trial: float) -> None:
        import ray

        self.ray = ray
        local = address in (None, "", "local")
        if not local and address != "auto":
            _check_reachable(address)  # Ray itself retries an unreachable head for ever
        self.reaper = _Reaper()
        self.before = _children()  # the reaper included: what this driver had before Ray
        try:
            ray.init(address=None if local else address,
                     num_cpus=num_cpus if local else None, **RAY_INIT)
        except Exception as err:
            self.reaper.close()
            where = "a local Ray" if local else f"--address {address}"
            raise SweepError(f"{where}: Ray did not start or connect "
                             f"({one_line(err)})") from None
        except BaseException:
            self.reaper.close()
            raise
        self._watch()
        self.cpus_per_trial = cpus_per_trial
        # retries are this module's: a failed trial is resubmitted and resumes its checkpoint
        self.runner = runner
        self.remote = ray.remote(_run_locked).options(num_cpus=cpus_per_trial,
                                                      num_gpus=gpus_per_trial, max_retries=0)
        self.pending: dict[Any, Any] = {}

    def slots(self) -> int:
        cpus = self.ray.cluster_resources().get("CPU", 1.0)
        return max(1, int(cpus // self.cpus_per_trial))

    def submit(self, key: Any, lock: str, *args: Any) -> None:
        self.pending[self.remote.remote(self.runner, lock, *args)] = key

    def next_result(self, tick: Callable[[], None] | None = None) -> tuple[Any, bool, Any]:
        """The next trial to end: (key, ok, its result or error); ``tick()`` every second
        while waiting."""
        while True:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=1.0)
            self._watch()  # the workers Ray has started meanwhile
            if ready:
                break
            if tick is not None:
                tick()
        ref = ready[0]
        key = self.pending.pop(ref)
        try:
            return key, True, self.ray.get(ref)
        except self.ray.exceptions.RayError as err:
            return key, False, getattr(err, "cause", None) or err

    def stop(self) -> None:
        """Ask every trial to stop: a running one gets a KeyboardInterrupt in its worker, where
        the run's own Ctrl-C handler (``Run.run``) stops at its next episode end with a
        checkpoint; one not started yet is dropped. Their results follow as errors."""
        for ref in self.pending:
            self.ray.cancel(ref, force=False)

    def _watch(self) -> None:
        self.reaper.watch(_children() - self.before)

    def close(self) -> None:
        self.pending.clear()
        self.ray.shutdown()
        self.reaper.close()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """SweepError unless a TCP connection to ``HOST:PORT`` opens within ``timeout`` s."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address {address}: expected auto or HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise SweepError(f"--address {address}: no Ray head answers there "
                         f"({err.strerror or err})") from None


@contextlib.contextmanager
def _ctrl_c_interrupts():
    """Ctrl-C (SIGINT) raises KeyboardInterrupt in the driver while the sweep runs, also where
    the driver was started with SIGINT ignored (a background job of a script)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _children() -> set[tuple[int, float]]:
    """(pid, start time) of every living descendant of this process."""
    import psutil

    out = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            out.add((child.pid, child.create_time()))
    return out


# reads "pid start-time" lines until its parent ends (stdin closes), lets Ray's own
# fate-sharing act, then kills what is left of those processes
_REAP = """
import sys, time, psutil
lines = sys.stdin.read().split()
time.sleep(float(sys.argv[1]))
for pid, start in zip(lines[0::2], lines[1::2]):
    try:
        p = psutil.Process(int(pid))
        if abs(p.create_time() - float(start)) < 1e-3:
            p.kill()
    except psutil.Error:
        pass
"""


class _Reaper:
    """A process that outlives the sweep's driver and kills the Ray processes the driver
    started (servers, agents, workers: :meth:`watch` tells it of each) once the driver is
    gone, however it ended. Without it, a killed driver's workers go on for seconds, and
    Ray's agents for about a minute."""

    def __init__(self, grace: float = 1.0) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _REAP, str(grace)],
                                        stdin=subprocess.PIPE, start_new_session=True,
                                        text=True)
        self.known: set[tuple[int, float]] = set()

    def watch(self, processes: set[tuple[int, float]]) -> None:
        new = processes - self.known
        if new:
            self.process.stdin.write("".join(f"{pid} {start!r}\n" for pid, start in new))
            self.process.stdin.flush()
            self.known |= new

    def close(self) -> None:
        """The driver is done: reap now and wait for it."""
        self.process.stdin.close()
        self.process.wait()


def _run_locked(runner: Runner, lock: str, *args: Any) -> dict[str, Any]:
    """``runner(*args)`` holding an exclusive lock on the file ``lock`` (waiting for it):
    a trial of a killed driver that is still ending never overlaps its next attempt."""
    with file_lock(lock):
        return runner(*args)


@dataclasses.dataclass
class SweepResult:
    out: str
    report: str | None
    finished: list[str]
    failed: dict[str, str]  # trial name -> its last error


class _Progress:
    """One line per event on stderr: finished trials, retries, counts and time left; while
    trials run, a line when one ends a task and, every ``heartbeat`` seconds, one per trial
    that collected env steps since (a task of the original's schedule takes hours), with the
    time it has left at its pace since this command first saw it move."""

    def __init__(self, total: int, quiet: bool, every: float = 10.0,
                 heartbeat: float = 600.0) -> None:
        self.total, self.quiet = total, quiet
        self.seconds: list[float] = []  # wall seconds of the trials run by this command
        self.whole: list[float] = []  # ... of those it ran from their start (not resumed)
        self.every = every  # seconds between looks at the running trials' task counts
        self.heartbeat = heartbeat
        self._next_look = 0.0
        self._next_beat: float | None = None
        self._ended: dict[str, int] = {}
        self._steps: dict[str, int] = {}
        self._initial: dict[str, int] = {}  # name -> env steps at this command's first look
        self._moved: dict[str, tuple[float, int]] = {}  # name -> (time, env steps) it first moved

    def tasks(self, run_dirs: dict[str, str], now: float | None = None) -> None:
        """A line for every task a trial (name -> run dir) ended since the last look, at most
        one look every ``every`` seconds, and the env steps of each trial that moved on since
        the last heartbeat: long trials show their progress."""
        now = time.monotonic() if now is None else now
        if self.quiet or now < self._next_look:
            return
        self._next_look = now + self.every
        if self._next_beat is None:
            self._next_beat = now + self.heartbeat
        beat = now >= self._next_beat
        if beat:
            self._next_beat = now + self.heartbeat
        for name, run_dir in run_dirs.items():
            ended, tasks, steps, total = run_position(run_dir)
            if name not in self._moved and steps != self._initial.setdefault(name, steps):
                self._moved[name] = (now, steps)  # a queued trial's pace starts when it runs
            before = self._ended.setdefault(name, ended)  # a first look is no news
            if before < ended < tasks:
                self.say(f"{name}: {ended} of {tasks} tasks ended")
            self._ended[name] = max(ended, before)
            if beat and total and steps > self._steps.setdefault(name, 0):
                text = (f"{name}: {steps} of {total} env steps "
                        f"({100 * steps / total:.0f} %), {ended} of {tasks} tasks ended")
                since, moved_steps = self._moved.get(name, (now, steps))
                if steps > moved_steps and now > since and total > steps:
                    left = (total - steps) * (now - since) / (steps - moved_steps)
                    text += f", about {_duration(left)} left at its pace so far"
                self.say(text)
                self._steps[name] = steps

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"sweep: {text}", file=sys.stderr, flush=True)

    def counts(self, done: int, running: int, failed: int, left: int, slots: int) -> str:
        text = f"done {done}/{self.total}, running {running}, failed {failed}, left {left}"
        known = self.whole or self.seconds  # resumed trials ran only their rest
        if known and running + left:
            mean = sum(known) / len(known)
            eta = mean * math.ceil((running + left) / max(1, slots))
            text += f", about {_duration(eta)} left"
        return text


def _stop_trials(executor: _Ray, running: int, progress: _Progress) -> None:
    """After a first Ctrl-C: let every running trial write a checkpoint at its next episode
    end, and wait for them (a second Ctrl-C stops at once, as without this)."""
    progress.say("stopping: each running trial writes a checkpoint at its next episode end "
                 "(Ctrl-C again to stop at once)")
    executor.stop()
    for _ in range(running):
        key, ok, _ = executor.next_result()
        if ok:
            progress.say(f"{key.name} finished")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_sweep(out: str, trials: dict[Trial, str], sweep_settings: dict[str, Any],
              runner: Runner, *, engine: str = "ray", address: str | None = None,
              num_cpus: int | None = None, cpus_per_trial: float = 1,
              gpus_per_trial: float = 0, max_retries: int = 1,
              quiet: bool = False) -> SweepResult:
    """Run every trial not yet finished (``trials``: trial -> its config as JSON), then write
    ``out/REPORT.md`` over every trial of the sweep that finished a task.

    The caller has checked each trial's run directory (no other run in it). ``engine`` is
    ``"ray"`` or ``"serial"`` (in this process, one after another).
    """
    from hypercrl.report import write_report

    if max_retries < 0:
        raise SweepError(f"--max-retries {max_retries}: must be 0 or more")
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise SweepError(f"--cpus-per-trial {cpus_per_trial} must be > 0 and "
                         f"--gpus-per-trial {gpus_per_trial} >= 0")
    if engine == "ray" and not ray_available():
        raise SweepError(f"the sweep needs Ray: {INSTALL}")
    if num_cpus is not None and num_cpus < 1:
        raise SweepError(f"--num-cpus {num_cpus}: must be 1 or more")
    check_settings(out, sweep_settings)
    dirs = {t: os.path.join(out, t.name) for t in trials}
    todo = [t for t in trials if not finished(dirs[t])]
    progress = _Progress(len(trials), quiet)
    done = len(trials) - len(todo)
    failed: dict[str, str] = {}
    attempts = dict.fromkeys(todo, 0)
    threads = None if engine == "serial" else max(1, int(cpus_per_trial))
    locks = {t: os.path.abspath(os.path.join(out, LOCKS, t.name)) for t in trials}
    executor: _Serial | _Ray | None = None
    if todo and engine == "ray":  # first: a cluster that cannot be reached writes nothing
        executor = _Ray(runner, address=address, num_cpus=num_cpus,
                        cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial)
    elif todo:
        executor = _Serial(runner)
    try:
        add_to_manifest(out, sweep_settings, list(trials))
    except BaseException:
        if executor is not None:
            executor.close()
        raise
    if executor is not None:
        progress.say(f"{_count(len(trials), 'trial')} in {out}: {done} finished before, "
                     f"{len(todo)} to run"
                     + (" one after another" if engine == "serial" else " on Ray"))
        quiet_runs = quiet or engine == "ray"  # a Ray worker's progress bars reach no one
        waiting = {t.name: dirs[t] for t in todo}

        def submit(t: Trial) -> None:
            attempts[t] += 1
            executor.submit(t, locks[t], trials[t], os.path.abspath(dirs[t]), threads,
                            quiet_runs)

        def tick() -> None:
            progress.tasks(waiting)

        try:
            with _ctrl_c_interrupts():
                for t in todo:
                    submit(t)
                running = len(todo)
                while running:
                    try:
                        t, ok, value = executor.next_result(tick)
                    except KeyboardInterrupt:
                        if engine != "ray":  # the trial ran here: its run stopped itself
                            raise
                        _stop_trials(executor, running, progress)
                        raise
                    running -= 1
                    if ok:
                        done += 1
                        waiting.pop(t.name)
                        seconds, resumed = float(value["seconds"]), bool(value["resumed"])
                        progress.seconds.append(seconds)
                        if not resumed:
                            progress.whole.append(seconds)
                        returns = " / ".join(f"{r:.1f}" for r in value["returns"])
                        progress.say(f"{t.name} finished in {_duration(seconds)}"
                                     f"{' (resumed)' if resumed else ''}; "
                                     f"final return per task {returns}")
                    elif attempts[t] <= max_retries:
                        progress.say(f"{t.name} failed (attempt {attempts[t]} of "
                                     f"{max_retries + 1}): {one_line(value)}; trying again")
                        submit(t)
                        running += 1
                    else:
                        waiting.pop(t.name)
                        failed[t.name] = one_line(value)
                        progress.say(f"{t.name} failed after {attempts[t]} attempt(s): "
                                     f"{failed[t.name]}")
                    slots = executor.slots()
                    progress.say(progress.counts(done, min(running, slots), len(failed),
                                                 max(0, running - slots), slots))
        finally:
            executor.close()
    else:
        progress.say(f"the {_count(len(trials), 'trial')} asked for in {out} finished before")
    runs = trial_dirs(out)
    report = write_report(runs, out) if runs else None
    return SweepResult(out, report, [t.name for t in trials if finished(dirs[t])], failed)

