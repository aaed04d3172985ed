"""Run logging: TensorBoard, a JSONL file of every scalar, and progress bars."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from tqdm.auto import tqdm


class RunLogger:
    """Writes scalars to ``RUN_DIR/scalars.jsonl`` and TensorBoard (``RUN_DIR/tb``).

    Args:
        run_dir: the run's directory.
        quiet: no progress bars and no printed lines.
        tensorboard: also write TensorBoard event files.
    """

    def __init__(self, run_dir: str, quiet: bool = False, tensorboard: bool = True) -> None:
        self.run_dir = run_dir
        self.quiet = quiet
        self._jsonl = open(os.path.join(run_dir, "scalars.jsonl"), "a", encoding="utf-8")  # noqa: SIM115
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(os.path.join(run_dir, "tb"))

    def scalar(self, tag: str, value: float, step: int) -> None:
        value = float(value)
        self._jsonl.write(json.dumps({"tag": tag, "step": int(step), "value": value}) + "\n")
        if self._tb is not None:
            self._tb.add_scalar(tag, value, step)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.scalar(f"{prefix}/{k}", v, step)

    def image(self, tag: str, rgb: np.ndarray, step: int) -> None:
        """An [H, W, 3] uint8 image (TensorBoard only)."""
        if self._tb is not None:
            self._tb.add_image(tag, rgb, step, dataformats="HWC")

    def info(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(message)

    def progress(self, total: int, desc: str, initial: int = 0) -> Any:
        return tqdm(total=total, desc=desc, initial=initial, disable=self.quiet, leave=False,
                    dynamic_ncols=True)

    def flush(self) -> None:
        self._jsonl.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
