"""Run logging: TensorBoard, a JSONL file of every scalar, and progress bars."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

# in the run directory (hypercrl.cli's _STARTED names them too)
SCALARS = "scalars.jsonl"  # every logged scalar, one JSON line each
TENSORBOARD = "tb"  # TensorBoard's event files


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
        self._path = os.path.join(run_dir, SCALARS)
        self._jsonl = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        self._tensorboard = tensorboard
        self._tb = self._writer(None)

    def _writer(self, purge_step: int | None):
        if not self._tensorboard:
            return None
        from torch.utils.tensorboard import SummaryWriter

        folder = os.path.join(self.run_dir, TENSORBOARD)
        if purge_step is not None:
            _after_existing_events(folder)
        return SummaryWriter(folder, purge_step=purge_step)

    def mark(self) -> int:
        """Flush and return the position a resumed run rewinds to (:meth:`rewind`)."""
        self.flush()
        return self._jsonl.tell()

    def rewind(self, position: int, purge_step: int) -> None:
        """Forget what was logged after :meth:`mark` returned ``position``: scalars.jsonl is
        cut back to it, and TensorBoard purges events from step ``purge_step`` on (events a
        killed run wrote after its checkpoint), so that a resumed run logs every (tag, step)
        once."""
        self._jsonl.close()
        with open(self._path, "r+b") as f:
            f.truncate(min(position, os.path.getsize(self._path)))
        self._jsonl = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        if self._tb is not None:
            self._tb.close()
            self._tb = self._writer(purge_step)

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

    def progress(self, total: int | None, desc: str, initial: int = 0) -> Any:
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


def _after_existing_events(folder: str) -> None:
    """Wait (under a second) until a new event file's name sorts after every one in
    ``folder``. TensorBoard reads event files in name order and names them by the second,
    host, process and a per-process counter; a purging writer opened in the same second as
    an earlier one of the same process could sort before it (counter 10 < 9 as text), and
    its purge would then come before the events it must drop."""
    stamps = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        parts = name.split(".")
        if name.startswith("events.out.tfevents.") and len(parts) > 3 and parts[3].isdigit():
            stamps.append(int(parts[3]))
    while stamps and int(time.time()) <= max(stamps):
        time.sleep(0.02)
