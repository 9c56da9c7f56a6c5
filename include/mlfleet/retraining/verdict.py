"""A retrain decision in a few words, the same in the CLI and the results pages."""

from __future__ import annotations

from typing import Any


def verdict(decision: dict[str, Any]) -> str:
    """"promoted", "kept the champion", or the reason a promotion did not happen (the champion moved:
    `stale`, `superseded`); decisions recorded before outcomes existed carry `promoted` alone."""
    outcome = decision.get("outcome")
    if outcome in ("stale", "superseded"):
        return str(decision.get("reason") or outcome)
    return "promoted" if decision.get("promoted") else "kept the champion"
