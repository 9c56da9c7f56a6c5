"""A champion's spec turned into the Bayesian search a retrain runs."""

from __future__ import annotations

from typing import Any

from mlfleet.spec import param_domain


def bayes_spec(spec: dict[str, Any], *, n_trials: int, batch_size: int) -> dict[str, Any]:
    """The champion's spec as a Bayesian search: numeric grids become ranges, the rest stay choices."""
    models = []
    for entry in spec["models"]:
        params: dict[str, Any] = {}
        for key, raw in entry.get("params", {}).items():
            domain = param_domain(raw)
            numeric = isinstance(domain, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in domain)
            if numeric and len(set(domain)) > 1:
                low, high = min(domain), max(domain)
                kind = "int" if all(isinstance(v, int) for v in domain) else "float"
                params[key] = {kind: [low, high], "log": bool(low > 0 and high / low >= 20)}
            else:
                params[key] = raw
        models.append({**entry, "params": params})
    return {**spec, "models": models, "search": {"strategy": "bayes", "n_trials": n_trials, "batch_size": batch_size}}
