"""Files that must never be half-written or silently misread: atomic saves, checked loads."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from typing import Any

import torch

FILE_MODE = 0o666  # less the umask (0644 with the usual 022), as open() creates files


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place.

    The file gets the mode every other file of a run gets (0666 less the umask). A failed
    write is an OSError naming ``path`` (the temporary file is removed)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        tmp, fd = _create_beside(folder)
    except OSError as err:
        raise OSError(err.errno, f"cannot write ({err.strerror})", path) from None
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise OSError(err.errno, f"cannot write ({err.strerror})", path) from None
    except RuntimeError as err:  # torch's zip writer reports I/O failures (disk full) so
        text = str(err).strip()
        if "PytorchStreamWriter" not in text and "write" not in text.lower():
            raise
        raise OSError(errno.EIO, f"cannot write ({text.splitlines()[0]})", path) from None
    finally:
        # gone after the rename; if the folder turned read-only meanwhile, it has to stay
        with contextlib.suppress(OSError):
            os.remove(tmp)


def write_json(path: str, obj: Any, indent: int | None = None) -> None:
    """``obj`` as JSON at ``path``, written beside it and renamed over it."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent)
    os.replace(tmp, path)


@contextlib.contextmanager
def file_lock(path: str, wait: bool = True):
    """Hold an exclusive lock on the file ``path`` (created if missing) across processes,
    yielding the open file: waiting for it, or, with ``wait=False``, raising
    BlockingIOError at once when another holds it. The lock ends with the block, or with
    the process however it dies."""
    import fcntl

    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield f


def one_line(err: BaseException) -> str:
    """The message of a user-facing error on one line: ``PATH: problem`` for an OSError."""
    if isinstance(err, OSError) and err.filename is not None:
        text = f"{err.filename}: {err.strerror or 'cannot access'}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _create_beside(folder: str) -> tuple[str, int]:
    """A new empty file in ``folder`` (mode 0666 less the umask) and its descriptor."""
    # torch.save derives its zip archive name from the file name: keep a plain ".pt" name
    while True:
        tmp = os.path.join(folder, f"tmp-{secrets.token_hex(8)}.pt")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            continue


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Why files cannot be written into ``folder`` (creating it if missing), e.g. "is a
    file, not a directory"; None if they can."""
    folder = os.fspath(folder)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        return "is a file, not a directory"
    parent = os.path.normpath(folder)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent) or os.curdir
    if not os.path.isdir(parent):
        return f"{parent} is a file, not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        where = "" if parent == os.path.normpath(folder) else f"{parent} "
        return f"{where}is not writable"
    return None


def load_checked(path: str | os.PathLike, fmt: str, version: int, what: str,
                 error: type[ValueError] = ValueError) -> dict[str, Any]:
    """A dict saved with ``"format": fmt, "version": version``; ``error`` names the problem:
    a missing file, a file torch cannot read, another format, another version."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise error(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: torch raises many kinds
        raise error(f"{path} is not a {what} (unreadable: {type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise error(f"{path} is not a {what}")
    if state.get("version") != version:
        raise error(f"{path} has format version {state.get('version')}; this hypercrl reads "
                    f"version {version}")
    return state
