"""Process-wide CPU settings that make training fast without changing what it computes.

* :func:`keep_freed_memory`: a hypernetwork step allocates gradients the size of its output
  head (9 MB at pusher size, 140 MB at door size) and frees them again. glibc's malloc hands
  blocks that large to the kernel with ``mmap`` and returns them on ``free``, so every step
  pays page faults (the kernel zeroing the pages) for every such tensor: about a third of a
  door-size step. Asking malloc to serve them from its heap and keep freed memory there
  (``mallopt``) makes the next step reuse the same pages. The cost: the process keeps its
  peak memory until it exits. ``HYPERCRL_MALLOC=default`` leaves malloc as it is.
* :func:`flush_denormals`: after a few hundred Adam steps some squared gradients of the
  hypernetwork fall below 1.2e-38, float32's smallest normal number, and arithmetic on such
  denormal numbers is many times slower on x86: a pusher-size hnet step went from 5 to 10 ms
  within its second training round. Flushing them to zero (``torch.set_flush_denormal``)
  keeps it at 5 ms. What it changes: terms below 1.2e-38, e.g. sqrt(v) of 1e-20 next to
  Adam's eps of 1e-8. ``HYPERCRL_DENORMALS=keep`` leaves them.

``hypercrl`` commands and launch scripts call :func:`configure` (both) at start, so a run and
its resume compute alike; a library user calls it once, if wanted.

:func:`machine` names what, beside the seed, decides a run's numbers: the CPU model and the
kernels torch dispatches to on it, and the thread count. The same seed on another CPU gives
another run (docs/RELIABILITY.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

import torch

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_done: list[bool] = []


def keep_freed_memory() -> bool:
    """Serve large blocks from malloc's heap and never trim it (glibc on Linux only).

    Returns whether the setting took effect (False elsewhere, or with
    ``HYPERCRL_MALLOC=default``). Calling it again does nothing more.
    """
    if _done:
        return _done[0]
    ok = False
    if sys.platform.startswith("linux") and os.environ.get("HYPERCRL_MALLOC", "") != "default":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            # mallopt returns 1 on success; a non-glibc libc may lack it (AttributeError)
            ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
        except (OSError, AttributeError):
            ok = False
    _done.append(ok)
    return ok


def flush_denormals() -> bool:
    """Flush denormal floats to zero on the CPU (x86 with SSE3; returns whether it took
    effect; not with ``HYPERCRL_DENORMALS=keep``)."""
    if os.environ.get("HYPERCRL_DENORMALS", "") == "keep":
        return False
    return bool(torch.set_flush_denormal(True))


def configure() -> dict[str, bool]:
    """Both settings; returns which took effect."""
    return {"keep_freed_memory": keep_freed_memory(), "flush_denormals": flush_denormals()}


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, str | int]:
    """The CPU, the instruction set torch's kernels use on it, and torch's thread count."""
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads()}
