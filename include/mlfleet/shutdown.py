"""Let a short-lived command exit without collecting, cycle by cycle, a heap it is about to free."""

from __future__ import annotations

import atexit
import gc


def skip_final_collections() -> None:
    """Freeze every object at exit, so the interpreter's last garbage collections have nothing to walk.

    A process that has imported MLflow, scikit-learn, XGBoost and pandas spends over a second
    exiting, and a small fraction of that with its objects frozen first (docs/design-figures.md,
    "Why the settings"); `mlfleet sweep` and the training entrypoint exit right after their work,
    so that is wall time a user waits for nothing. Objects
    still drop their last references at exit, so files are closed and buffers flushed as before;
    only the final collections skip them. Call it from a command's entry point only: a library
    must not change how its host process exits.
    """
    atexit.register(gc.freeze)
