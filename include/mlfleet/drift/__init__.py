"""Drift: the statistics (PSI, KS, the report; exact on rows, or from mergeable sketches) and the monitor
that runs them per champion on statistics only."""

from mlfleet.drift.statistics import PSI_EPSILON, drift_report, ks, psi, sketch_drift_report, write_drift_report

__all__ = ["PSI_EPSILON", "drift_report", "ks", "psi", "sketch_drift_report", "write_drift_report"]
