"""The best trial's refit uses every core and still gives the model a one-core fit would."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer

from mlfleet.sweep.finalize import _fit_on_every_core, refit_spreads
from mlfleet.training.zoo import build_estimator


class FitSpy(ClassifierMixin, BaseEstimator):
    def __init__(self, n_jobs: int = 1) -> None:
        self.n_jobs = n_jobs

    def fit(self, X, y):  # noqa: ANN001, ANN201 - scikit-learn's signature
        self.n_jobs_at_fit_ = self.n_jobs
        return self


def test_fits_on_every_core_and_gives_the_model_its_n_jobs_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    X, y = load_breast_cancer(return_X_y=True)
    fitted = _fit_on_every_core(FitSpy(n_jobs=1), X, y, spread=True)
    assert fitted.n_jobs_at_fit_ == 6 and fitted.n_jobs == 1
    own = _fit_on_every_core(FitSpy(n_jobs=3), X, y, spread=False)
    assert own.n_jobs_at_fit_ == 3 and own.n_jobs == 3


def test_only_a_thread_count_the_user_left_alone_is_spread() -> None:
    assert refit_spreads("random_forest", {"max_depth": 4})
    assert refit_spreads("xgboost", {}) and refit_spreads("lightgbm", {})
    assert not refit_spreads("random_forest", {"n_jobs": 3})  # the spec set n_jobs: its value
    # One-vs-rest logistic regression's n_jobs starts a process pool; binary ignores it.
    assert not refit_spreads("logistic_l1", {"C": 1.0})
    assert not refit_spreads("mlp", {})


def test_a_one_vs_rest_refit_starts_no_process_pool() -> None:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    model = build_estimator("logistic_l1", {"C": 1.0}, task="classification", seed=0, n_classes=3)
    seen = []
    fit = model.fit
    model.fit = lambda X, y: (seen.append(model.n_jobs), fit(X, y))[1]  # n_jobs as the fit saw it
    _fit_on_every_core(model, X, y, spread=refit_spreads("logistic_l1", {"C": 1.0}))
    assert seen == [None]  # one class after another, in this process: no loky pool to start


@pytest.mark.parametrize("model, params", [
    ("random_forest", {"n_estimators": 20, "max_depth": 6}),
    ("xgboost", {"n_estimators": 30, "max_depth": 4}),
    ("lightgbm", {"n_estimators": 30}),
])
def test_the_same_model_as_a_one_core_fit(model: str, params: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 4)  # more threads than this machine may have: still equal
    X, y = load_breast_cancer(return_X_y=True)
    one_core = build_estimator(model, params, task="classification", seed=0).fit(X, y)
    every_core = _fit_on_every_core(build_estimator(model, params, task="classification", seed=0), X, y,
                                    spread=refit_spreads(model, params))
    np.testing.assert_array_equal(every_core.predict_proba(X), one_core.predict_proba(X))
    assert every_core.get_params(deep=False).get("n_jobs") == one_core.get_params(deep=False).get("n_jobs")
