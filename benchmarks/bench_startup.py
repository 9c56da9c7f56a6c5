"""Process start-up: a training process's imports with and without a Python bytecode cache.

Every batch is a new `python -m mlfleet.training.entrypoint` process, so its import time is paid
once per batch. Whether the environment has compiled bytecode (.pyc) decides most of that cost.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

REPEATS = 3
# What the entrypoint imports to train a logistic_l1 / random_forest batch from Parquet.
IMPORTS = ("mlfleet.training.entrypoint, mlfleet.training.cv, mlfleet.training.zoo, pandas, pyarrow.parquet, "
           "sklearn.linear_model, sklearn.ensemble, sklearn.model_selection, sklearn.metrics, joblib")


def _time_imports(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {IMPORTS}"], env=env, check=True, timeout=300)
    return time.perf_counter() - started


def run(*, as_installed_env: dict[str, str]) -> dict[str, Any]:
    """`as_installed_env`: the caller's original environment; it is run with whatever .pyc files the
    installation holds and writes none, so the venv is left as it was."""
    env = {k: v for k, v in as_installed_env.items() if k != "PYTHONPYCACHEPREFIX"}
    uncached = _time_imports({**env, "PYTHONDONTWRITEBYTECODE": "1"})
    _time_imports(dict(os.environ))  # fills the benchmark's bytecode cache; not timed
    cached = [_time_imports(dict(os.environ)) for _ in range(REPEATS)]
    return {"uncached_s": uncached, "cached_s": statistics.median(cached), "imports": IMPORTS}
