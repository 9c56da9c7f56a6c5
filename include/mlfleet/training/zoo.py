"""The model zoo: a spec's model type + params -> an unfitted scikit-learn-compatible estimator.

Tree ensembles default to `n_jobs=1` (a user's `n_jobs` wins): mlfleet parallelises across
folds and trials, and a per-estimator thread pool on top of that only oversubscribes the cores.
"""

from __future__ import annotations

from typing import Any

# The model types whose `n_jobs` is a number of threads (the forests' joblib threads, XGBoost's and
# LightGBM's OpenMP), not of processes.
THREADED_MODELS = frozenset({"xgboost", "lightgbm", "random_forest"})


def build_estimator(model_type: str, params: dict[str, Any], *, task: str, seed: int, n_classes: int = 2) -> Any:
    """Build the estimator a trial trains; identical calls give identical estimators."""
    params = dict(params)
    classification = task == "classification"
    if model_type == "xgboost":
        import xgboost

        cls = xgboost.XGBClassifier if classification else xgboost.XGBRegressor
        return cls(**{"n_jobs": 1, **params, "random_state": seed})
    if model_type == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMClassifier if classification else lightgbm.LGBMRegressor
        return cls(**{"n_jobs": 1, "verbose": -1, **params, "random_state": seed})
    if model_type == "random_forest":
        from sklearn import ensemble

        cls = ensemble.RandomForestClassifier if classification else ensemble.RandomForestRegressor
        return cls(**{"n_jobs": 1, **params, "random_state": seed})
    if model_type == "logistic_l1":
        if not classification:
            from sklearn.linear_model import Lasso

            return Lasso(**params, random_state=seed)
        from sklearn.linear_model import LogisticRegression

        base = LogisticRegression(**{"l1_ratio": 1.0, "solver": "liblinear", **params, "random_state": seed})
        if n_classes >= 3:
            from sklearn.multiclass import OneVsRestClassifier

            return OneVsRestClassifier(base)
        return base
    if model_type == "mlp":
        from mlfleet.training.mlp import MLPClassifier, MLPRegressor

        cls = MLPClassifier if classification else MLPRegressor
        return cls(**params, random_state=seed)
    raise ValueError(f"unknown model type {model_type!r}")


def known_params(model_type: str, *, task: str) -> set[str]:
    """The keyword arguments a model type accepts, for refusing misspelled params up front."""
    estimator = build_estimator(model_type, {}, task=task, seed=0, n_classes=2)
    names = set(estimator.get_params(deep=False))
    if model_type in ("xgboost", "lightgbm"):
        # Both accept their native parameter names as **kwargs; these are the documented ones.
        names |= _native_params(model_type)
    return names - {"random_state"}


def _native_params(model_type: str) -> set[str]:
    if model_type == "xgboost":
        return {"eta", "lambda", "alpha", "max_leaves", "max_bin", "grow_policy", "eval_metric",
                "scale_pos_weight", "tree_method", "sampling_method", "min_split_loss"}
    return {"num_leaves", "min_data_in_leaf", "feature_fraction", "bagging_fraction",
            "bagging_freq", "lambda_l1", "lambda_l2", "max_bin", "min_gain_to_split", "num_iterations"}
