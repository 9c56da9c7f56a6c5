"""Drift: the statistics (PSI, KS, the report) and the monitor that runs them per champion."""

from mlfleet.drift.statistics import PSI_EPSILON, drift_report, ks, psi, write_drift_report

__all__ = ["PSI_EPSILON", "drift_report", "ks", "psi", "write_drift_report"]
