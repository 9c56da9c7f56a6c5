"""Drift statistics (PSI and two-sample KS) and the per-feature report the retraining DAG branches on.

Two tests because they fail differently: PSI is a binned, effect-size-like number that ignores
sample size, KS is exact but on large samples flags shifts too small to matter, so KS only
counts when its statistic also clears a floor. numpy/pandas/scipy load inside the functions
so importing this module from a DAG file stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import ArrayLike

PSI_EPSILON = 1e-4


def _finite(values: ArrayLike, name: str) -> np.ndarray:
    import numpy as np

    array = np.asarray(values, dtype="float64").ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"{name} has no finite values")
    return array


def psi(reference: ArrayLike, current: ArrayLike, *, bins: int = 10) -> float:
    """Population stability index of `current` against `reference`.

        PSI = sum_i (c_i - r_i) * ln(c_i / r_i)

    where r_i and c_i are the shares of each sample in bin i. Bin edges are the reference's
    quantiles, min and max included, deduplicated (heavy ties and constant columns just give
    fewer bins); two extra bins below the min and above the max catch current values outside
    the reference range. Empty bins get a share of PSI_EPSILON so the log stays finite; NaN
    and inf values are dropped.
    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a real shift.
    """
    import numpy as np

    if bins < 1:
        raise ValueError("bins must be at least 1")
    ref, cur = _finite(reference, "reference"), _finite(current, "current")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))

    def shares(values: np.ndarray) -> np.ndarray:
        inside = np.histogram(values, bins=edges)[0] if edges.size > 1 else [np.sum(values == edges[0])]
        below, above = np.sum(values < edges[0]), np.sum(values > edges[-1])
        return np.maximum(np.r_[below, inside, above] / values.size, PSI_EPSILON)

    r, c = shares(ref), shares(cur)
    return float(np.sum((c - r) * np.log(c / r)))


def ks(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (scipy's ks_2samp), NaNs dropped."""
    from scipy.stats import ks_2samp

    result = ks_2samp(_finite(reference, "reference"), _finite(current, "current"))
    return float(result.statistic), float(result.pvalue)


def histogram(reference: ArrayLike, current: ArrayLike, *, bins: int = 20) -> dict[str, list[float]]:
    """Both windows' shares of rows over the same equal-width bins: what the drift page draws."""
    import numpy as np

    ref, cur = _finite(reference, "reference"), _finite(current, "current")
    low, high = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    return {"edges": [float(e) for e in edges],
            "reference": [float(v) for v in np.histogram(ref, bins=edges)[0] / ref.size],
            "current": [float(v) for v in np.histogram(cur, bins=edges)[0] / cur.size]}


def drift_report(
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    psi_threshold: float,
    ks_pvalue: float,
    ks_statistic: float,
    bins: int = 10,
) -> dict[str, Any]:
    """Compare each feature of `current` with `reference`; JSON-ready.

    A feature drifts when PSI > psi_threshold, or when the KS p-value < ks_pvalue and the KS
    statistic > ks_statistic. Raises ValueError for a missing feature, an empty window, or a
    feature with no finite values in a window (a broken pipeline, not "no drift").
    """
    for name, frame in (("reference", reference), ("current", current)):
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise ValueError(f"feature(s) {', '.join(map(repr, missing))} missing from the {name} window")
        if len(frame) == 0:
            raise ValueError(f"the {name} window has no rows")
    results: dict[str, dict[str, Any]] = {}
    for feature in features:
        try:
            score = psi(reference[feature], current[feature], bins=bins)
            stat, pvalue = ks(reference[feature], current[feature])
        except ValueError as exc:
            raise ValueError(f"feature {feature!r}: {exc}") from exc
        reasons = []
        if score > psi_threshold:
            reasons.append(f"psi {score:.4g} > {psi_threshold:g}")
        if pvalue < ks_pvalue and stat > ks_statistic:
            reasons.append(f"ks statistic {stat:.4g} > {ks_statistic:g} with p-value {pvalue:.3g} < {ks_pvalue:g}")
        reason = "; ".join(reasons) or (
            f"within limits: psi {score:.4g} <= {psi_threshold:g}, ks statistic {stat:.4g} (p-value {pvalue:.3g})"
        )
        results[feature] = {
            "psi": score,
            "ks_statistic": stat,
            "ks_pvalue": pvalue,
            "drifted": bool(reasons),
            "reason": reason,
            "histogram": histogram(reference[feature], current[feature]),
        }
    drifted = sorted(f for f, r in results.items() if r["drifted"])
    return {
        "features": results,
        "drifted_features": drifted,
        "drift": bool(drifted),
        "n_reference": int(len(reference)),
        "n_current": int(len(current)),
        "thresholds": {
            "psi_threshold": psi_threshold, "ks_pvalue": ks_pvalue, "ks_statistic": ks_statistic, "bins": bins,
        },
    }


def write_drift_report(report: dict[str, Any], path: Any) -> Any:
    """Write the report as JSON atomically (a rename, or one PUT), so the branching task never reads half a file."""
    from mlfleet.storage import as_path, write_json_atomic

    return write_json_atomic(as_path(path), report)
