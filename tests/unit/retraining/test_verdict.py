"""What the CLI and the results pages say of a retrain decision."""

from mlfleet.retraining.verdict import verdict


def test_a_stale_decision_says_why_the_champion_stayed() -> None:
    stale = {"promoted": False, "outcome": "stale",
             "reason": "stale: champion moved from v1 to v3 since this retrain was prepared"}
    assert verdict(stale) == stale["reason"]


def test_promoted_and_kept_read_as_before_with_or_without_an_outcome() -> None:
    assert verdict({"promoted": True, "outcome": "promoted", "reason": "v2 beat v1"}) == "promoted"
    assert verdict({"promoted": False, "outcome": "kept_champion"}) == "kept the champion"
    assert verdict({"promoted": True}) == "promoted"  # recorded before decisions had an outcome
