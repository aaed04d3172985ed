"""Rollout frames to an mp4 (imageio + imageio-ffmpeg) or to a PNG strip of a few frames.

A video is written only to a path ending in ``.mp4`` (or ``.png`` for a strip), never over a
folder, and never over an existing file that is not a video of that kind (a run's checkpoint,
model or JSON files stay untouched); an earlier video at that path is replaced. Every refusal
is a ValueError naming the path, raised before anything is created; missing parent folders
are created only once the path passed these checks. Frames go to a temporary file beside the
path, renamed over it when complete and removed if writing fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence

import numpy as np

# suffix -> what is written there, and how such a file begins (a file of another kind at the
# path is not replaced)
FORMATS = {".mp4": "an mp4 video", ".png": "a PNG image"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_kind(path: str, suffix: str) -> bool:
    """Whether the existing file ``path`` is empty or begins as a file of ``suffix`` does."""
    with open(path, "rb") as f:
        head = f.read(12)
    if not head:
        return True  # an empty file holds nothing to lose
    if suffix == ".png":
        return head.startswith(_PNG_SIGNATURE)
    return head[4:8] == b"ftyp"  # ISO base media (mp4): the ftyp box comes first


def video_path_problem(path: str, suffixes: Sequence[str] = tuple(FORMATS)) -> str | None:
    """Why a video cannot be written to ``path`` (one of ``suffixes``), e.g. "is a folder";
    None if it can. Reads at most the first bytes of an existing file; creates nothing."""
    from hypercrl.io import folder_problem

    wanted = " or ".join(suffixes)
    if not path:
        return f"no file name; give one ending in {wanted}"
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        what = "is a folder" if os.path.isdir(path) else "names a folder"
        return f"{what}; give a file name ending in {wanted}"
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in suffixes:
        found = f"suffix {os.path.splitext(path)[1]!r}" if suffix else "no suffix"
        return (f"{found}: a video is written as " + ", or ".join(
            f"{FORMATS[s]} ({s})" for s in suffixes))
    if os.path.lexists(path):
        if not os.path.isfile(path):
            return "exists and is not a regular file; it is not replaced"
        if not _is_kind(path, suffix):
            return f"exists and is not {FORMATS[suffix]}; it is not replaced"
    problem = folder_problem(os.path.dirname(os.path.abspath(path)))
    if problem:
        return f"cannot write its folder ({problem})"
    return None


def check_video_path(path: str, suffixes: Sequence[str] = tuple(FORMATS)) -> None:
    """ValueError naming ``path`` unless a video can be written there (see
    :func:`video_path_problem`); call it before recording, to fail before the rollout."""
    problem = video_path_problem(path, suffixes)
    if problem:
        raise ValueError(f"{path or repr(path)}: {problem}")


def _temporary(path: str, suffix: str) -> str:
    """A new file name beside ``path`` with ``suffix`` (the writers choose the format by it);
    the folders above it are created here, once ``path`` has passed its checks."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    return os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp{suffix}")


class Mp4Writer:
    """An mp4 at ``path`` written frame by frame (only the encoder's buffer in memory): a
    temporary file beside it until :meth:`close` renames it over ``path``; :meth:`abort` (or
    a failing :meth:`close`) removes it. ValueError, before anything is created, for a path
    :func:`check_video_path` refuses."""

    def __init__(self, path: str, fps: int = 10) -> None:
        check_video_path(path, (".mp4",))
        self.path, self.fps = path, fps
        self._tmp: str | None = None
        self._writer = None

    def append(self, frame: np.ndarray) -> None:
        """Encode one [H, W, 3] uint8 frame."""
        import imageio.v2 as imageio

        if self._writer is None:
            self._tmp = _temporary(self.path, ".mp4")
            self._writer = imageio.get_writer(self._tmp, fps=self.fps, codec="libx264",
                                              macro_block_size=1)
        try:
            self._writer.append_data(np.asarray(frame, dtype=np.uint8))
        except BaseException:
            self.abort()
            raise

    def close(self) -> str:
        """Finish the file and put it at ``path``; returns the path."""
        if self._writer is None:
            raise ValueError(f"{self.path}: no frames to write")
        try:
            self._writer.close()
            self._writer = None
            os.replace(self._tmp, self.path)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Stop and remove the temporary file (the path keeps what it held before)."""
        if self._writer is not None:
            # imageio's ``with`` leaves the writer open on an error: ffmpeg would go on and
            # write the temporary file after it is removed
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(self._tmp)


def write_mp4(path: str, frames: Sequence[np.ndarray], fps: int = 10) -> str:
    """Write [H, W, 3] uint8 frames to ``path`` (an ``.mp4``; missing folders created);
    returns the path. ValueError, before anything is written, for a path
    :func:`check_video_path` refuses."""
    return _write_frames(Mp4Writer(path, fps), frames)


def _write_frames(video: Mp4Writer | FrameList, frames: Sequence[np.ndarray]) -> str:
    """All of ``frames`` into ``video`` (its path already checked), closed; its path."""
    if not frames:
        raise ValueError(f"{video.path}: no frames to write")
    for frame in frames:
        video.append(frame)
    return video.close()


class FrameList(list):
    """Frames kept in memory for a PNG strip of ``count`` of them at ``path``, with
    :class:`Mp4Writer`'s ``append``/``close``/``abort``."""

    def __init__(self, path: str, count: int = 6) -> None:
        super().__init__()
        check_video_path(path, (".png",))
        self.path, self.count = path, count

    def close(self) -> str:
        return write_strip(self.path, self, self.count)

    def abort(self) -> None:
        self.clear()


def recorder(path: str, strip_frames: int = 6) -> Mp4Writer | FrameList:
    """Where the frames of one episode go: an mp4 written as they come, or, for a ``.png``
    path, a strip of ``strip_frames`` of them written on ``close``. ValueError naming
    ``path`` for any other path :func:`check_video_path` refuses."""
    check_video_path(path)
    if path.lower().endswith(".png"):
        return FrameList(path, strip_frames)
    return Mp4Writer(path)


def write_strip(path: str, frames: Sequence[np.ndarray], count: int = 6, gap: int = 4) -> str:
    """Write ``count`` evenly spaced frames (the first and the last included) side by side,
    ``gap`` white pixels apart, as one PNG at ``path`` (a ``.png``); returns the path.
    ValueError, before anything is written, for a path :func:`check_video_path` refuses."""
    import imageio.v2 as imageio

    check_video_path(path, (".png",))
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    if count < 1:
        raise ValueError(f"{path}: a strip needs at least 1 frame, got {count}")
    picks = np.unique(np.linspace(0, len(frames) - 1, count).round().astype(int))
    h = frames[0].shape[0]
    white = np.full((h, gap, 3), 255, dtype=np.uint8)
    parts = []
    for k in picks:
        parts += [np.asarray(frames[k], dtype=np.uint8)[..., :3], white]
    tmp = _temporary(path, ".png")
    try:
        imageio.imwrite(tmp, np.concatenate(parts[:-1], axis=1))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    return path


def write_video(path: str, frames: Sequence[np.ndarray], strip_frames: int = 6) -> str:
    """An mp4 at ``path``, or a strip of ``strip_frames`` frames where it ends in ``.png``;
    ValueError naming ``path`` for any other path :func:`check_video_path` refuses."""
    return _write_frames(recorder(path, strip_frames), frames)
