"""Sweep results: the leaderboard files, the parallel-coordinates plot, MLflow tracking and its model registry.

No Airflow here, and MLflow/plotly/pandas are imported inside the functions that need them,
so `import mlfleet.results` stays cheap for DAG parsing and the CLI.
"""

from mlfleet.results.leaderboard import build_leaderboard, read_leaderboard, write_leaderboard
from mlfleet.results.plots import parallel_coordinates_html
from mlfleet.results.reference import load_reference, load_reference_statistics
from mlfleet.results.registry import (
    champion,
    list_champions,
    load_model,
    record_version_tags,
    register_model,
    set_alias,
)
from mlfleet.results.tracking import configure, experiment_id, log_trials

__all__ = [
    "build_leaderboard",
    "champion",
    "configure",
    "experiment_id",
    "list_champions",
    "load_model",
    "load_reference",
    "load_reference_statistics",
    "log_trials",
    "parallel_coordinates_html",
    "read_leaderboard",
    "record_version_tags",
    "register_model",
    "set_alias",
    "write_leaderboard",
]
