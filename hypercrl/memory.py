"""Keep freed memory for reuse: large tensors without page faults at every training step.

A hypernetwork step allocates gradients the size of its output head (9 MB at pusher size,
140 MB at door size) and frees them again. glibc's malloc hands blocks that large to the
kernel with ``mmap`` and returns them on ``free``, so every step pays page faults (the kernel
zeroing the pages) for every such tensor: about a third of a door-size step. Asking malloc to
serve them from its heap and keep freed memory there (``mallopt``) makes the next step reuse
the same pages. The cost: the process keeps its peak memory until it exits.

``hypercrl`` commands and launch scripts call :func:`keep_freed_memory` at start;
``HYPERCRL_MALLOC=default`` leaves malloc as it is. A library user calls it once, if wanted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

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
