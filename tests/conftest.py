"""Hypothesis profiles: a quick ``default`` and a thorough, derandomized ``ci``.

Choose with the HYPOTHESIS_PROFILE environment variable (``.ci/run`` sets ``ci``).
"""

from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, settings

# pytest-xdist's workers (``-n auto`` in pyproject.toml) share the cores: each worker's
# torch takes its share of them, not all of them (torch's default, which oversubscribes
# the cores ``workers`` times over). Set before any test module imports torch.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // _workers))
    os.environ.setdefault("OMP_NUM_THREADS", _threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,
)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
