"""Rollout frames to mp4 (imageio + imageio-ffmpeg)."""

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
