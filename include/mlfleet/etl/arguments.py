"""The feature job's command line, built from settings: one builder for local Spark and EMR.

Both paths hand `feature_job.py` the same flags, rooted in the feature root (a directory, or the
object store on EMR), so the two runs of the same interval differ only in where the data lives.
"""

from __future__ import annotations

from mlfleet.config import Settings


def feature_job_arguments(settings: Settings, interval: dict[str, str], *, feature_repo: str,
                          home: str | None = None) -> list[str]:
    """`--home` only where the job can see the worker's MLFLEET_HOME (local Spark)."""
    root = settings.feature_root.rstrip("/")
    return [
        "--start", interval["start"], "--end", interval["end"],
        "--raw", f"{root}/raw/events", "--offline", f"{root}/offline",
        "--feature-repo", feature_repo, "--feature-root", root,
        *(["--home", home] if home else []),
        "--lookback-days", str(settings.etl_lookback_days),
        "--churn-horizon-days", str(settings.churn_horizon_days),
    ]
