"""Drift monitoring: compare each champion's training statistics with the newest window's statistics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mlfleet.backends.object_store import state_root
from mlfleet.config import Settings
from mlfleet.storage import display, short_digest


@dataclass(frozen=True)
class MonitorRun:
    """The drift_monitor run doing a check: its run id and when it started (stable across retries)."""

    run_id: str
    started: datetime

    @property
    def key(self) -> str:
        """10 hex digits of the run id: what names its reports and the retrains it triggers."""
        return short_digest(self.run_id, 10)


def check_model(settings: Settings, name: str, *, run: MonitorRun | None = None) -> dict[str, Any] | None:
    """Drift report for one registered model's champion, or None when it was not trained on Feast features.

    With `run` (the drift_monitor run checking) the report is named after that run, so a retried
    check rewrites the same report instead of adding a second one.
    """
    from mlfleet import results
    from mlfleet.drift import sketch, statistics
    from mlfleet.drift.window import recent_statistics

    info = results.champion(settings, name)
    if not info or "mlfleet.feature_service" not in info["tags"]:
        return None
    columns = json.loads(info["tags"]["mlfleet.features"])
    # Statistics only, on both sides: the champion's training sketches and the window's per-day ones.
    stored = results.load_reference_statistics(settings, name)
    if stored is None:  # registered before statistics: sketch its training frame (reads rows, once per check)
        stored = sketch.of_frame(results.load_reference(settings, name))
    reference, n_reference = sketch.from_json(stored)
    current, n_current = recent_statistics(settings, features=columns, days=settings.drift_window_days)
    report = statistics.sketch_drift_report(
        reference=reference, current=current, features=columns, n_reference=n_reference, n_current=n_current,
        psi_threshold=settings.drift_psi_threshold, ks_pvalue=settings.drift_ks_pvalue,
        ks_statistic=settings.drift_ks_statistic,
    )
    stamp = datetime.now(timezone.utc)
    report.update(model=name, champion_version=str(info["version"]), window_days=settings.drift_window_days,
                  checked_at=stamp.isoformat())
    # Names sort by time either way (the demo and the tests read the newest report by name).
    file_name = f"{stamp:%Y%m%dT%H%M%S}" if run is None else f"{run.started:%Y%m%dT%H%M%S}-{run.key}"
    path = state_root(settings, "drift") / name / f"{file_name}.json"
    statistics.write_drift_report(report, path)
    report["report_path"] = display(path)
    return report


def check_all(settings: Settings, *, run: MonitorRun | None = None) -> list[dict[str, Any]]:
    """Check every champion; return one retrain conf per drifted model (`model`, `drifted_features`)."""
    from mlfleet import results

    confs = []
    for name in results.list_champions(settings):
        report = check_model(settings, name, run=run)
        if report and report["drift"]:
            confs.append({"model": name, "drifted_features": report["drifted_features"], "drift_report": report["report_path"],
                          "champion_version": report["champion_version"]})
    return confs


def retrain_triggers(settings: Settings, run: MonitorRun) -> list[dict[str, Any]]:
    """What drift_monitor's trigger maps over: each drifted model's retrain conf and a run id that is
    the same for every attempt of this check (`retrain__<model>__v<champion>__<hash of the monitor run>`),
    so a retried trigger finds the retrain it started instead of starting a second."""
    return [{"conf": conf,
             "trigger_run_id": f"retrain__{conf['model']}__v{conf['champion_version']}__{run.key}"}
            for conf in check_all(settings, run=run)]
