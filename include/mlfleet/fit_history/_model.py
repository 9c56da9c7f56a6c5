"""The runtime model: a per-model-type ridge regression of log(seconds) on the fit history."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from mlfleet.fit_history._store import FitHistory, FitRecord, Sample, params_text
from mlfleet.trials import FoldSeconds, Trial, default_fold_seconds

# A model type with fewer recorded folds than this is predicted by the defaults.
MIN_RECORDS = 5
# Newest folds per model type the regression is fitted on (Settings.fit_history_sample).
DEFAULT_SAMPLE = 1000
# Ridge penalty on standardized inputs: keeps a short or collinear history from extrapolating wildly.
RIDGE_ALPHA = 1.0
# At most this many param-derived inputs per model type (numeric params, then categories).
MAX_PARAM_COLUMNS = 24
# A prediction stays within this factor of the slowest and fastest fold the model was fitted on.
EXTRAPOLATION = math.log(1000.0)


@dataclass(frozen=True)
class _Column:
    """One input of a model type's regression: how to read it off a trial, and its scaling."""

    kind: str  # "shape" (n_rows, n_features, workers), "number" (a numeric param), "category", "unset"
    name: str
    value: Any = None  # the category's value
    log: bool = True  # numbers: log(x) if every fitted value was positive, else sign(x) * log1p(|x|)
    floor: float = 0.0  # numbers: the smallest fitted value (log columns clip to it)
    mean: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class _Fit:
    columns: tuple[_Column, ...]
    coef: tuple[float, ...]
    intercept: float
    low: float
    high: float
    n_records: int


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _transform(column: _Column, value: float) -> float:
    if column.log:
        return math.log(max(value, column.floor))
    return math.copysign(math.log1p(abs(value)), value)


def _raw_inputs(column: _Column, shape: Mapping[str, float | None], params: Mapping[str, Any]) -> float | None:
    """A column's transformed value for one fit, or None when it is unknown (imputed with the mean)."""
    if column.kind == "shape":
        value = shape.get(column.name)
        return None if value is None or value <= 0 else math.log(value)
    if column.kind == "number":
        number = _number(params.get(column.name))
        return None if number is None else _transform(column, number)
    if column.kind == "category":
        return 1.0 if params.get(column.name) == column.value and isinstance(params.get(column.name), (str, bool)) else 0.0
    return 1.0 if _number(params.get(column.name)) is None else 0.0  # "unset": the param is absent or None


def _param_columns(param_sets: Sequence[Mapping[str, Any]]) -> list[_Column]:
    numbers: dict[str, list[float]] = {}
    categories: dict[tuple[str, Any], int] = {}
    for params in param_sets:
        for name, value in params.items():
            number = _number(value)
            if number is not None:
                numbers.setdefault(name, []).append(number)
            elif isinstance(value, (str, bool)):
                categories[(name, value)] = categories.get((name, value), 0) + 1
    columns: list[_Column] = []
    for name in sorted(numbers):
        values = numbers[name]
        if min(values) == max(values):
            continue
        positive = min(values) > 0
        columns.append(_Column("number", name, log=positive, floor=min(values) if positive else 0.0))
        if len(values) < len(param_sets):  # e.g. max_depth=None (unbounded) beside max_depth=10
            columns.append(_Column("unset", name))
    for (name, value), count in sorted(categories.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        if count < len(param_sets):
            columns.append(_Column("category", name, value=value))
    return columns[:MAX_PARAM_COLUMNS]


def _fit_model(samples: Sequence[Sample]) -> _Fit:
    """Weighted ridge regression (scikit-learn's `Ridge`) of log(seconds) on standardized inputs.

    The folds of one trial (and repeats of one configuration) share their inputs, so each
    distinct input is one row, weighted by its count, on the mean of its log seconds: the fit
    costs what the distinct configurations cost, not what the folds do. The inputs are
    standardized here, with the same weights, so a prediction applies the same scaling.
    """
    import numpy as np
    from sklearn.linear_model import Ridge

    groups: dict[tuple[str, int, int, int], list[float]] = {}
    for text, n_rows, n_features, workers, seconds in samples:
        entry = groups.setdefault((text, n_rows, n_features, workers), [0.0, 0.0])
        entry[0] += math.log(seconds)
        entry[1] += 1
    keys = list(groups)
    param_sets = [json.loads(key[0]) for key in keys]
    weights = np.array([groups[key][1] for key in keys])
    target = np.array([groups[key][0] / groups[key][1] for key in keys])
    columns = [_Column("shape", "n_rows"), _Column("shape", "n_features"), _Column("shape", "workers"),
               *_param_columns(param_sets)]
    matrix = np.full((len(keys), len(columns)), np.nan)
    for i, ((_, n_rows, n_features, workers), params) in enumerate(zip(keys, param_sets)):
        shape = {"n_rows": n_rows, "n_features": n_features, "workers": workers}
        for j, column in enumerate(columns):
            value = _raw_inputs(column, shape, params)
            if value is not None:
                matrix[i, j] = value
    known = ~np.isnan(matrix)
    w = weights[:, None]
    means = (np.where(known, matrix, 0.0) * w).sum(axis=0) / np.maximum((known * w).sum(axis=0), 1e-12)
    matrix = np.where(known, matrix, means)  # unknown inputs count as the mean (a zero once centered)
    scales = np.sqrt((((matrix - means) ** 2) * w).sum(axis=0) / weights.sum())
    keep = scales > 1e-12  # an input that never varied (one machine's workers, say) says nothing
    columns = [replace(c, mean=float(m), scale=float(s)) for c, m, s, k in zip(columns, means, scales, keep) if k]
    low, high = float(target.min()) - EXTRAPOLATION, float(target.max()) + EXTRAPOLATION
    if not columns:  # nothing varied: the weighted mean is the prediction
        return _Fit(columns=(), coef=(), intercept=float(np.average(target, weights=weights)), low=low, high=high,
                    n_records=len(samples))
    standardized = (matrix[:, keep] - means[keep]) / scales[keep]
    ridge = Ridge(alpha=RIDGE_ALPHA).fit(standardized, target, sample_weight=weights)
    return _Fit(columns=tuple(columns), coef=tuple(float(c) for c in ridge.coef_), intercept=float(ridge.intercept_),
                low=low, high=high, n_records=len(samples))


class RuntimeModel:
    """Predicted seconds of one CV fold of a trial, per model type: the regression fitted on its
    history when it has at least `min_records` folds, else `mlfleet.trials.default_fold_seconds`."""

    def __init__(self, fits: Mapping[str, _Fit] | None = None) -> None:
        self._fits = dict(fits or {})

    @property
    def fitted_models(self) -> list[str]:
        """The model types predicted from history (the others use the defaults)."""
        return sorted(self._fits)

    @classmethod
    def fit(cls, records: Iterable[FitRecord], *, min_records: int = MIN_RECORDS) -> RuntimeModel:
        by_model: dict[str, list[Sample]] = {}
        for r in records:
            by_model.setdefault(r.model, []).append(
                (params_text(r.params), r.n_rows, r.n_features, r.workers, r.seconds))
        return cls._from_samples(by_model, min_records=min_records)

    @classmethod
    def _from_samples(cls, by_model: Mapping[str, Sequence[Sample]], *, min_records: int) -> RuntimeModel:
        fits = {}
        for model, samples in by_model.items():
            usable = [s for s in samples if s[4] > 0]
            if len(usable) >= min_records:
                fits[model] = _fit_model(usable)
        return cls(fits)

    @classmethod
    def load(cls, path: Path | str, *, models: Iterable[str] | None = None, sample: int = DEFAULT_SAMPLE,
             min_records: int = MIN_RECORDS) -> RuntimeModel:
        """Fitted on the newest `sample` folds of each model type in the store at `path` (all
        types, or those named); a missing store gives the defaults."""
        history = FitHistory(path)
        if not history.path.is_file():
            return cls()
        names = sorted(set(models)) if models is not None else history.models()
        return cls._from_samples({name: history.samples(model=name, limit=sample) for name in names},
                                 min_records=min_records)

    def fold_seconds(self, trial: Trial, *, n_rows: int | None = None, n_features: int | None = None,
                     workers: int | None = None) -> float:
        """One fold of `trial` on one core; an unknown input (None) is taken as the history's mean."""
        fit = self._fits.get(trial.model)
        if fit is None:
            return default_fold_seconds(trial)
        shape = {"n_rows": n_rows, "n_features": n_features, "workers": workers}
        log_seconds = fit.intercept
        for column, coef in zip(fit.columns, fit.coef):
            value = _raw_inputs(column, shape, trial.params)
            if value is not None:
                log_seconds += coef * (value - column.mean) / column.scale
        return math.exp(min(max(log_seconds, fit.low), fit.high))

    def predictor(self, *, n_rows: int | None = None, n_features: int | None = None,
                  workers: int | None = None) -> FoldSeconds:
        """`fold_seconds` for one training set and batch size, as `plan_batches` takes it."""
        return lambda trial: self.fold_seconds(trial, n_rows=n_rows, n_features=n_features, workers=workers)


def prediction_error(predicted: Mapping[str, float] | Sequence[float], actual: Mapping[str, float] | Sequence[float],
                     *, tolerance_seconds: float = 30.0) -> dict[str, Any]:
    """How far predicted trial seconds are from the actual ones: the median absolute error and the
    share of trials within ±`tolerance_seconds` (the ±30 s figure the Dunnhumby platform quotes).

    Mappings are matched by trial id (ids in only one of them are left out); sequences pair up in order.
    """
    if isinstance(predicted, Mapping) and isinstance(actual, Mapping):
        pairs = [(float(predicted[k]), float(actual[k])) for k in sorted(predicted.keys() & actual.keys())]
    elif isinstance(predicted, Mapping) or isinstance(actual, Mapping):
        raise TypeError("prediction_error: give predicted and actual both as {trial_id: seconds} or both as lists")
    else:
        if len(predicted) != len(actual):
            raise ValueError(f"prediction_error: {len(predicted)} predictions for {len(actual)} actual times; "
                             "give one of each per trial")
        pairs = [(float(p), float(a)) for p, a in zip(predicted, actual)]
    if not pairs:
        return {"n": 0, "median_abs_error_seconds": None, "share_within_tolerance": None,
                "tolerance_seconds": tolerance_seconds}
    errors = [abs(p - a) for p, a in pairs]
    return {
        "n": len(pairs),
        "median_abs_error_seconds": statistics.median(errors),
        "share_within_tolerance": sum(e <= tolerance_seconds for e in errors) / len(errors),
        "tolerance_seconds": tolerance_seconds,
    }
