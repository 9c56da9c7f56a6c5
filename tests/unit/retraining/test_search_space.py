"""A champion's grid becomes the Bayesian search its retrain runs."""

from __future__ import annotations

from mlfleet.retraining import bayes_spec
from mlfleet.spec import Range, param_domain, parse_spec

GRID = {"name": "churn", "task": "classification", "target": "churned", "metric": "roc_auc",
        "dataset": {"feature_service": "churn_v1"}, "search": {"strategy": "grid"},
        "models": [{"type": "xgboost", "params": {"max_depth": [3, 5, 7], "learning_rate": [0.01, 0.3],
                                                  "n_estimators": [200], "booster": ["gbtree", "dart"]}},
                   {"type": "logistic_l1", "params": {"C": [0.01, 1, 100]}}]}


def test_numeric_grids_become_ranges_and_the_rest_stays() -> None:
    out = bayes_spec(GRID, n_trials=12, batch_size=4)
    xgb, lasso = out["models"][0]["params"], out["models"][1]["params"]
    assert xgb["max_depth"] == {"int": [3, 7], "log": False}
    assert xgb["learning_rate"] == {"float": [0.01, 0.3], "log": True}  # spans 30x: log scale
    assert xgb["n_estimators"] == [200]  # one value: nothing to search
    assert xgb["booster"] == ["gbtree", "dart"]  # categorical stays a choice
    assert lasso["C"] == {"float": [0.01, 100], "log": True}
    assert out["search"] == {"strategy": "bayes", "n_trials": 12, "batch_size": 4}
    assert {k: v for k, v in out.items() if k not in ("models", "search")} == {k: v for k, v in GRID.items()
                                                                                 if k not in ("models", "search")}


def test_the_result_is_a_valid_bayes_spec() -> None:
    spec = parse_spec(bayes_spec(GRID, n_trials=8, batch_size=4))
    assert isinstance(param_domain(spec.models[0].params["max_depth"]), Range)
    assert GRID["models"][0]["params"]["max_depth"] == [3, 5, 7]  # the champion's spec is not changed
