"""A run's folder: what it holds, who is writing it, what it ran under.

``hypercrl run`` and ``resume`` (hypercrl/cli.py) and the sweep's trials check a folder with
these before they write to it: a folder holding another run's files is refused, one that a
running process holds (its ``.lock``) is named with that process, and a start that fails
removes what it created. docs/RELIABILITY.md tells the rules from a user's side.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import sys
from importlib import metadata

from hypercrl.cpu import machine
from hypercrl.io import file_lock, write_json

VERSIONED = ("hypercrl", "torch", "numpy", "gymnasium", "mujoco", "pybullet",
             "stable-baselines3", "tensorboard")


def versions() -> dict[str, str | int]:
    """What a run's numbers depend on beside its config: package versions and the machine."""
    out: dict[str, str | int] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return {**out, **machine()}


def note_other_machine(run_dir: str, task: int) -> None:
    """Where a run resumes under other versions, CPU or thread count than it last ran under
    (its versions.json with the changes of earlier resumes), say so on stderr and add the
    change to versions.json's "resumed" list: the run goes on, but from here on it computes
    otherwise than it would have. What the run never recorded (it started before hypercrl
    recorded it) cannot be compared: it is said once and added to the list, so later resumes
    compare with it."""
    path = os.path.join(run_dir, "versions.json")
    try:
        with open(path, encoding="utf-8") as f:
            started = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return  # nothing to compare with; the run itself does not depend on this file
    if not isinstance(started, dict):
        return
    last = dict(started)  # the setup it last ran under: the start's, with each resume's changes
    resumed = started.get("resumed")
    resumed = resumed if isinstance(resumed, list) else []
    for change in resumed:
        if isinstance(change, dict):
            last.update((k, v) for k, v in change.items() if k != "task")
    now = versions()
    changed = {k: v for k, v in now.items() if k in last and last[k] != v}
    # a run started before hypercrl recorded these (e.g. the CPU) cannot be compared on them
    unrecorded = {k: v for k, v in now.items() if k not in last}
    if changed:
        what = ", ".join(f"{k} {last[k]} -> {v}" for k, v in changed.items())
        print(f"{run_dir}: resuming in task {task} under another setup ({what}); the run goes "
              "on, but from here its numbers differ from those it would have had (docs/"
              "RELIABILITY.md)", file=sys.stderr)
    if unrecorded:
        names = ", ".join(unrecorded)
        what = ", ".join(f"{k} {v}" for k, v in unrecorded.items())
        print(f"{run_dir}: resuming in task {task}; the run did not record its {names} so "
              f"far; from here it runs under {what} (recorded in versions.json)",
              file=sys.stderr)
    if not changed and not unrecorded:
        return
    started["resumed"] = [*resumed, {"task": task, **changed, **unrecorded}]
    with contextlib.suppress(OSError):  # a read-only run folder fails at the checkpoint
        write_json(path, started, indent=2)


def config_diff(run_dir: str, cfg) -> list[str] | None:
    """The keys (``method_options.KEY`` inside the option groups) in which ``cfg`` differs
    from the run ``run_dir`` holds; None if it holds no run (no config.json)."""
    from hypercrl.config import fill_defaults
    from hypercrl.loop import RunError

    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
        raise RunError(f"{path}: invalid run config ({err})") from None
    return sorted(flat_diff(fill_defaults(old), json.loads(cfg.to_json())))


def flat_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in set(old) | set(new):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += flat_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def check_run_dir(run_dir: str) -> None:
    """RunError unless ``run_dir`` is a writable directory or can be created as one."""
    from hypercrl.io import folder_problem
    from hypercrl.loop import RunError

    problem = folder_problem(run_dir)
    if problem:
        raise RunError(f"run directory {run_dir}: {problem}")


# what start_run writes before a run's first checkpoint (hypercrl.log's SCALARS and
# TENSORBOARD, hypercrl.loop's TIMING; spelled out to keep the CLI's start light)
STARTED = ("config.json", "versions.json", "metrics.json", "scalars.jsonl", "tb", "timing.json")


def run_files(run_dir: str) -> list[str]:
    """The files and folders of a run that ``run_dir`` holds (those a run writes)."""
    from hypercrl.loop import CHECKPOINT, SAVED_PREFIX

    if not os.path.isdir(run_dir):
        return []
    names = {*STARTED, CHECKPOINT}
    return sorted(f for f in os.listdir(run_dir) if f in names or f.startswith(SAVED_PREFIX))


def check_new_run_dir(run_dir: str, cfg) -> None:
    """RunError unless a new run of ``cfg`` may start in ``run_dir``: a folder that no other
    process is writing (:func:`run_lock`) and that holds no run's files (a run there, of
    this config or another, or what is left of one, would be overwritten), writable or
    creatable."""
    check_not_locked(run_dir)  # a run still going here: name it, whatever it has written
    check_no_run_files(run_dir, cfg)


def check_no_run_files(run_dir: str, cfg) -> None:
    from hypercrl.loop import RunError

    diff = config_diff(run_dir, cfg)
    if diff:
        raise RunError(f"{run_dir} holds a run with another config (differs in {diff}); "
                       "choose another --run-dir")
    if diff is not None:
        raise RunError(f"{run_dir} already holds this run; continue it with "
                       f"`hypercrl resume {run_dir}` or choose another --run-dir")
    left = run_files(run_dir)
    if left:
        raise RunError(f"{run_dir} holds files of a run ({', '.join(left)}) but no "
                       "config.json, so it can be neither resumed nor safely overwritten; "
                       "choose another --run-dir or move those files away")
    check_run_dir(run_dir)


RUN_LOCK = ".lock"  # in a run directory: held by the process that runs or resumes the run
# errno of a file system without flock (some network and FUSE ones): run unlocked, saying so
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}


@contextlib.contextmanager
def run_lock(run_dir: str):
    """Hold ``run_dir``'s lock while this process writes the run; a RunError at once, naming
    the holder's process id and host, when another process holds it (a run or resume of
    the same folder still going). A process that dies, however, lets it go."""
    import socket

    path = os.path.join(run_dir, RUN_LOCK)
    stack = contextlib.ExitStack()
    f = None
    try:
        f = stack.enter_context(file_lock(path, wait=False))
    except BlockingIOError:
        raise _locked(run_dir, _read_holder(path)) from None
    except OSError as err:
        if err.errno not in _NO_LOCKS:
            raise
        print(f"hypercrl: {run_dir}: the file system cannot lock {RUN_LOCK} "
              f"({err.strerror}); nothing stops another process from writing this run "
              "meanwhile", file=sys.stderr)
    with stack:
        if f is not None:
            f.seek(0)
            f.truncate()
            f.write(f"process {os.getpid()} on {socket.gethostname()}\n")
            f.flush()
        yield


def missing_ancestor(path: str) -> str | None:
    """The topmost folder of ``path`` that does not exist yet (None if ``path`` exists)."""
    top = None
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        top, path = path, os.path.dirname(path)
    return top


def remove_new(run_dir: str, created: str | None, before: set[str]) -> None:
    """Remove what a failed start wrote: the folders it created, else its new entries."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        for name in sorted(set(os.listdir(run_dir)) - before):
            path = os.path.join(run_dir, name)
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)


def read_config(run_dir: str):
    from hypercrl.config import RunConfig
    from hypercrl.loop import RunError

    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise RunError(f"{run_dir}: no config.json (not a run directory)")
    try:
        with open(path, encoding="utf-8") as f:
            return RunConfig.from_dict(json.load(f))
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise RunError(f"{path}: invalid run config ({err})") from None


def _read_holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def _locked(run_dir: str, holder: str):
    from hypercrl.loop import RunError

    return RunError(f"{run_dir} is being written by another process ({holder}); wait for it "
                    "to end, or stop it, and then resume the run")


def check_not_locked(run_dir: str) -> None:
    """RunError, naming the holder, when another process holds ``run_dir``'s lock (a run or
    resume of it still going); creates nothing."""
    import fcntl

    path = os.path.join(run_dir, RUN_LOCK)
    try:
        f = open(path, encoding="utf-8")
    except OSError:
        return  # no lock file (no run has begun here), or none this process may read
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)  # let go when f closes
        except BlockingIOError:
            raise _locked(run_dir, _read_holder(path)) from None
        except OSError:
            return  # a file system without locks (run_lock says so)


