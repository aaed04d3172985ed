"""Rollout frames to an mp4 (imageio + imageio-ffmpeg) or to a PNG strip of a few frames."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def write_mp4(path: str, frames: Sequence[np.ndarray], fps: int = 10) -> str:
    """Write [H, W, 3] uint8 frames to ``path`` (directories created); returns the path."""
    import imageio.v2 as imageio

    if not frames:
        raise ValueError(f"{path}: no frames to write")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.mp4"
    with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(np.asarray(frame, dtype=np.uint8))
    os.replace(tmp, path)
    return path


def write_strip(path: str, frames: Sequence[np.ndarray], count: int = 6, gap: int = 4) -> str:
    """Write ``count`` evenly spaced frames (the first and the last included) side by side,
    ``gap`` white pixels apart, as one PNG at ``path``; returns the path."""
    import imageio.v2 as imageio

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
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    imageio.imwrite(tmp, np.concatenate(parts[:-1], axis=1))
    os.replace(tmp, path)
    return path


def write_video(path: str, frames: Sequence[np.ndarray], strip_frames: int = 6) -> str:
    """An mp4 at ``path``, or a strip of ``strip_frames`` frames where it ends in ``.png``."""
    if path.lower().endswith(".png"):
        return write_strip(path, frames, strip_frames)
    return write_mp4(path, frames)
