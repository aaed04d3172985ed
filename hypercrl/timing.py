"""Wall time per phase of a run (env stepping, planning, training, ...), for ``bench loop``.

A phase's time is exclusive: a phase entered inside another (a log line written during an
evaluation) is charged to the inner phase only, so the phases add up to the time measured.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator


class PhaseTimer:
    """Accumulates exclusive wall seconds and entry counts per phase name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # [name, start, time spent in inner phases]

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        frame = [name, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            elapsed = time.perf_counter() - frame[1]
            self.seconds[name] += elapsed - frame[2]
            self.calls[name] += 1
            if self._stack:
                self._stack[-1][2] += elapsed

    def snapshot(self) -> dict[str, float]:
        """Seconds per phase so far (a copy)."""
        return dict(self.seconds)

    @staticmethod
    def since(now: dict[str, float], before: dict[str, float]) -> dict[str, float]:
        """Seconds per phase between two snapshots."""
        return {k: v - before.get(k, 0.0) for k, v in now.items() if v - before.get(k, 0.0) > 0}
