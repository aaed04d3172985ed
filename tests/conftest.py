import os

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402

# cores / workers torch threads per pytest-xdist worker (`make test`: 2 workers), at most 2
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _denormals_as_torch_starts():
    """`hypercrl` commands flush denormals for the whole process (hypercrl/cpu.py); a test
    that runs one must not change how the tests after it compute."""
    yield
    torch.set_flush_denormal(False)
