"""Trigger-form overrides: a few spec fields set from separate params before the spec is validated.

Applied to the spec's mapping, not to a validated spec, so an override is checked exactly like
the field it replaces (`n_trials: 0` fails as `search.n_trials`); nothing here imports Airflow.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mlfleet.spec.errors import SpecError

# override (param) name -> the spec field it sets
OVERRIDES: dict[str, tuple[str, ...]] = {
    "n_trials": ("search", "n_trials"),
    "max_parallel": ("budget", "max_parallel"),
    "timeout_minutes": ("budget", "timeout_minutes"),
    "backend": ("backend",),
}
# strategies that take n_trials; a grid's trials are every combination of its lists
COUNTED_STRATEGIES = ("random", "bayes")


def given_overrides(params: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides among `params` that are set (None, the form's empty field, keeps the spec's value)."""
    return {name: params[name] for name in OVERRIDES if params.get(name) is not None}


def apply_overrides(spec: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the spec mapping with each override set at its field; the input is left unchanged.

    Raises SpecError naming the field for an unknown override, for `n_trials` on a grid sweep, and
    where the spec's section is not a mapping; the values themselves are left to spec validation.
    """
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise SpecError(unknown[0], f"not an override; the overrides are {', '.join(OVERRIDES)}")
    result = copy.deepcopy(dict(spec))
    for name, value in overrides.items():
        if value is None:
            continue
        *sections, key = OVERRIDES[name]
        target = result
        for section in sections:
            inner = target.get(section)
            if inner is None:  # absent, or YAML's empty `budget:`
                inner = target[section] = {}
            if not isinstance(inner, dict):
                raise SpecError(section, f"expected a mapping to set the {name} override in, got {inner!r}")
            target = inner
        target[key] = value
    _check_n_trials(result, overrides)
    return result


def _check_n_trials(spec: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    if overrides.get("n_trials") is None:
        return
    strategy = spec["search"].get("strategy", "grid")
    if strategy not in COUNTED_STRATEGIES:
        raise SpecError(
            "search.n_trials",
            f"the n_trials override needs search.strategy random or bayes; this spec's is {strategy!r} "
            "(a grid runs every combination of its lists); leave n_trials empty",
        )
