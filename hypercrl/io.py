"""Files that must never be half-written or silently misread: atomic saves, checked loads."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    path = os.fspath(path)
    # torch.save derives its zip archive name from the file name: keep a plain ".pt" name
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
