"""The results UI's plots as plotly figure dicts (drawn in the browser by plotly's bundled JS).

Plain dicts, not plotly objects: building them needs no plotly import in the api-server, and the
page embeds them as JSON. Rows are the leaderboard's trial rows (plus live "pending" ones). Text
from specs and results reaches plotly through `plot_text` (plotly renders a subset of HTML).
"""

from __future__ import annotations

import math
from typing import Any

from mlfleet.results.plots import dimensions, plot_text

# An axis whose positive values span this many orders of magnitude is drawn on a log scale.
LOG_SPAN = 2.0
_LAYOUT = {"margin": {"l": 60, "r": 30, "t": 40, "b": 50}, "height": 380, "template": "plotly_white"}


def _numbers(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def wants_log(values: list[Any]) -> bool:
    numbers = _numbers(values)
    return bool(numbers) and len(numbers) == len(values) and min(numbers) > 0 and \
        math.log10(max(numbers) / min(numbers)) >= LOG_SPAN


def _log_params(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """parcoords has no log axes: a param whose values span decades becomes `log10(<name>)`."""
    names = {n for t in trials for n in (t.get("params") or {})}
    logged = {n for n in names if wants_log([t["params"][n] for t in trials if (t.get("params") or {}).get(n) is not None])}
    if not logged:
        return trials
    return [{**t, "params": {(f"log10({k})" if k in logged and v is not None else k):
                             (math.log10(v) if k in logged and v is not None else v)
                             for k, v in (t.get("params") or {}).items()}} for t in trials]


def succeeded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") == "success" and _numbers([r.get("mean_score")])]


def parallel_coordinates(board: dict[str, Any]) -> dict[str, Any] | None:
    """One line per successful trial, coloured by score; drag along an axis to brush."""
    if not succeeded(board.get("trials", [])):
        return None
    dims = dimensions({**board, "trials": _log_params(succeeded(board.get("trials", [])))})
    scores = dims[-1]["values"]
    line = {"color": scores, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": {"text": dims[-1]["label"]}}}
    return {"data": [{"type": "parcoords", "line": line, "dimensions": dims}],
            "layout": {**_LAYOUT, "height": 440, "margin": {"l": 70, "r": 70, "t": 60, "b": 30}}}


def _order(row: dict[str, Any]) -> tuple[int, int, str]:
    """Trials in the order they were asked: round, then Optuna's number or the planned position."""
    number = row.get("optuna_number")
    return (int(row.get("round") or 0), int(number) if isinstance(number, int) else 0, str(row.get("trial_id")))


def optimization_history(rows: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """Each trial's score in the order asked, and the best so far (higher is better)."""
    done = sorted(succeeded(rows), key=_order)
    if not done:
        return None
    scores = [float(r["mean_score"]) for r in done]
    best = [max(scores[: i + 1]) for i in range(len(scores))]
    x = list(range(1, len(done) + 1))
    labels = [plot_text(f"{r['trial_id']} ({r.get('model')})") for r in done]
    return {"data": [
        {"type": "scatter", "mode": "markers", "name": "trial", "x": x, "y": scores, "text": labels},
        {"type": "scatter", "mode": "lines", "name": "best so far", "x": x, "y": best, "line": {"shape": "hv"}},
    ], "layout": {**_LAYOUT, "xaxis": {"title": {"text": "trial (in the order asked)"}},
                  "yaxis": {"title": {"text": plot_text(metric)}}}}


def score_by_param(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """One scatter per parameter: the score of each trial that has it (log x where values span decades)."""
    done = succeeded(rows)
    names = sorted({n for r in done for n in (r.get("params") or {})})
    figures = []
    for name in names:
        having = [r for r in done if name in (r.get("params") or {})]
        xs = [r["params"][name] for r in having]
        numeric = len(_numbers(xs)) == len(xs)
        axis: dict[str, Any] = {"title": {"text": plot_text(name)}}
        if numeric and wants_log(xs):
            axis["type"] = "log"
        elif not numeric:
            axis["type"] = "category"
            xs = ["null" if x is None else plot_text(x) for x in xs]
        figures.append({"name": name, "figure": {"data": [{
            "type": "scatter", "mode": "markers", "x": xs, "y": [float(r["mean_score"]) for r in having],
            "text": [plot_text(f"{r['trial_id']} ({r.get('model')})") for r in having],
            "marker": {"color": [float(r["mean_score"]) for r in having], "colorscale": "Viridis"},
        }], "layout": {**_LAYOUT, "height": 300, "xaxis": axis, "yaxis": {"title": {"text": plot_text(metric)}}}}})
    return figures


def importance_bars(importances: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    """Horizontal bars per model: how much each parameter explains of the score (Optuna's fANOVA)."""
    data = []
    for model, values in importances.items():
        ordered = sorted(values.items(), key=lambda kv: kv[1])
        data.append({"type": "bar", "orientation": "h", "name": plot_text(model),
                     "y": [plot_text(k) for k, _ in ordered], "x": [v for _, v in ordered]})
    if not data:
        return None
    return {"data": data, "layout": {**_LAYOUT, "barmode": "group", "xaxis": {"title": {"text": "importance"}}}}


def drift_histogram(feature: str, histogram: dict[str, Any]) -> dict[str, Any]:
    """Reference and current shares over the same bins, overlaid."""
    edges = histogram["edges"]
    centers = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    return {"data": [
        {"type": "bar", "name": "reference", "x": centers, "y": histogram["reference"], "opacity": 0.6},
        {"type": "bar", "name": "current", "x": centers, "y": histogram["current"], "opacity": 0.6},
    ], "layout": {**_LAYOUT, "height": 260, "barmode": "overlay", "title": {"text": plot_text(feature)},
                  "xaxis": {"title": {"text": plot_text(feature)}}, "yaxis": {"title": {"text": "share of rows"}}}}
