"""The parallel-coordinates plot of a sweep: one line per successful trial, coloured by score.

Params differ between model types, so a numeric axis may lack values for some trials: those sit
on an extra tick below the axis ("n/a", or "None" for an explicit null) instead of being dropped.
Non-numeric params become categorical axes (integer positions with the values as tick labels).

Every label that comes from a spec or a result (axis names, tick labels, titles) goes through
`plot_text`: plotly draws a subset of HTML in labels, so a param value must not be read as markup.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from mlfleet.storage import as_path, write_text_atomic

MAX_DIMENSIONS = 60  # plotly's parcoords limit
_MISSING = object()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def plot_text(value: Any) -> str:
    """`value` as text for a plotly label (tick, hover text, legend, title).

    plotly renders a subset of HTML there (`<a href>`, `<b>`, `<br>`, `<span style>`), so `&`, `<`
    and `>` are escaped: plotly turns those entities back into the characters it shows, while a
    tag never forms. Quotes stay as they are (no tag, no attribute; plotly would show `&quot;` as typed).
    """
    return html.escape(str(value), quote=False)


def _label(value: Any) -> str:
    if value is _MISSING:
        return "n/a"
    if isinstance(value, str):
        return plot_text(value)
    return plot_text(json.dumps(value, sort_keys=True, default=str))


def _categorical(label: str, values: list[Any]) -> dict[str, Any]:
    names = sorted({_label(v) for v in values})
    index = {name: i for i, name in enumerate(names)}
    return {"label": plot_text(label), "values": [index[_label(v)] for v in values],
            "tickvals": list(range(len(names))), "ticktext": names, "range": [-0.5, len(names) - 0.5]}


def _numeric(label: str, values: list[Any]) -> dict[str, Any]:
    numbers = [float(v) for v in values if _is_number(v)]
    label = plot_text(label)
    if len(numbers) == len(values):
        return {"label": label, "values": numbers}
    low, high = min(numbers), max(numbers)
    span = (high - low) or abs(high) or 1.0
    sentinel = low - 0.15 * span
    gaps = sorted({"None" if v is None else "n/a" for v in values if not _is_number(v)})
    uniques = sorted(set(numbers))
    ticks = uniques if len(uniques) <= 8 else [low + i * (high - low) / 4 for i in range(5)]
    return {"label": label, "values": [float(v) if _is_number(v) else sentinel for v in values],
            "range": [sentinel, high], "tickvals": [sentinel, *ticks],
            "ticktext": ["/".join(gaps)] + [f"{t:.4g}" for t in ticks]}


def dimensions(leaderboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Param axes (sorted by name), then model type, then the score: the axis a reader looks at last."""
    trials = [t for t in leaderboard["trials"] if t.get("status") == "success"]
    names = sorted({n for t in trials for n in (t.get("params") or {})})[: MAX_DIMENSIONS - 2]
    dims = []
    for name in names:
        values = [(t.get("params") or {}).get(name, _MISSING) for t in trials]
        present = [v for v in values if v is not _MISSING and v is not None]
        numeric = bool(present) and all(_is_number(v) for v in present)
        dims.append(_numeric(name, values) if numeric else _categorical(name, values))
    dims.append(_categorical("model", [t.get("model") for t in trials]))
    scores = [float(t["mean_score"]) for t in trials]
    dims.append({"label": plot_text(leaderboard.get("metric") or "mean_score"), "values": scores})
    return dims


def _empty_page(leaderboard: dict[str, Any]) -> str:
    failed = "".join(
        f"<li><code>{html.escape(str(t.get('trial_id')))}</code>: {html.escape(str(t.get('error')))}</li>"
        for t in leaderboard.get("trials", [])
    )
    title = html.escape(f"{leaderboard.get('experiment')} / {leaderboard.get('run_id')}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<h1>{title}</h1><p>No successful trials: nothing to plot.</p><ul>{failed}</ul></body></html>")


def parallel_coordinates_html(leaderboard: dict[str, Any], path: Any) -> Any:
    """Write a self-contained (offline) HTML plot of the successful trials; a notice page when none."""
    path = as_path(path)
    if not any(t.get("status") == "success" for t in leaderboard.get("trials", [])):
        return write_text_atomic(path, _empty_page(leaderboard))
    import plotly.graph_objects as go

    dims = dimensions(leaderboard)
    scores = dims[-1]["values"]
    figure = go.Figure(go.Parcoords(
        line={"color": scores, "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": dims[-1]["label"]}}},
        dimensions=dims,
    ))
    figure.update_layout(title={"text": plot_text(f"{leaderboard.get('experiment')} / {leaderboard.get('run_id')}: "
                                                  f"{len(scores)} successful trials")})
    return write_text_atomic(path, figure.to_html(include_plotlyjs=True, full_html=True))
