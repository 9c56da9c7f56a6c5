"""Drift monitoring: compare each champion's training reference with the newest feature window."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from mlfleet.config import Settings


def check_model(settings: Settings, name: str) -> dict[str, Any] | None:
    """Drift report for one registered model's champion, or None when it was not trained on Feast features."""
    from mlfleet import results
    from mlfleet.drift import statistics
    from mlfleet.features.training_sets import recent_features

    info = results.champion(settings, name)
    if not info or "mlfleet.feature_service" not in info["tags"]:
        return None
    columns = json.loads(info["tags"]["mlfleet.features"])
    reference = results.load_reference(settings, name)
    current = recent_features(settings, features=columns, days=settings.drift_window_days)
    report = statistics.drift_report(
        reference=reference, current=current, features=columns,
        psi_threshold=settings.drift_psi_threshold, ks_pvalue=settings.drift_ks_pvalue,
        ks_statistic=settings.drift_ks_statistic,
    )
    stamp = datetime.now(timezone.utc)
    report.update(model=name, champion_version=str(info["version"]), window_days=settings.drift_window_days,
                  checked_at=stamp.isoformat())
    path = settings.drift_dir / name / f"{stamp:%Y%m%dT%H%M%S}.json"
    statistics.write_drift_report(report, path)
    report["report_path"] = str(path)
    return report


def check_all(settings: Settings) -> list[dict[str, Any]]:
    """Check every champion; return one retrain conf per drifted model (`model`, `drifted_features`)."""
    from mlfleet import results

    confs = []
    for name in results.list_champions(settings):
        report = check_model(settings, name)
        if report and report["drift"]:
            confs.append({"model": name, "drifted_features": report["drifted_features"], "drift_report": report["report_path"]})
    return confs
