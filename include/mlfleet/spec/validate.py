"""Checks that need the model zoo or the data: every one runs before any trial starts."""

from __future__ import annotations

from typing import Any

from mlfleet.config import Limits
from mlfleet.spec.errors import SpecError
from mlfleet.spec.model import ExperimentSpec, check_limits


def check_metric(spec: ExperimentSpec) -> None:
    from sklearn.metrics import get_scorer_names

    names = get_scorer_names()
    if spec.metric not in names:
        close = [n for n in names if spec.metric.split("_")[0] in n][:6]
        hint = f"; did you mean one of {close}" if close else ""
        raise SpecError("metric", f"unknown scikit-learn scorer {spec.metric!r}{hint}")


def check_params(spec: ExperimentSpec) -> None:
    from mlfleet.training.zoo import known_params

    for i, entry in enumerate(spec.models):
        known = known_params(entry.type, task=spec.task)
        for key in entry.params:
            if key not in known:
                raise SpecError(
                    f"models[{i}].params.{key}",
                    f"unknown parameter for {entry.type} ({spec.task}); known: {', '.join(sorted(known))}",
                )


def check_target(spec: ExperimentSpec, frame: Any) -> None:
    """The target exists, is non-empty, and a classification target fills every fold."""
    y = frame[spec.target]
    if y.isna().any():
        raise SpecError("target", f"{spec.target!r} has {int(y.isna().sum())} missing values")
    if len(frame) < spec.cv.folds:
        raise SpecError("cv.folds", f"{spec.cv.folds} folds but the dataset has only {len(frame)} rows")
    if spec.task == "classification":
        counts = y.value_counts()
        if len(counts) < 2:
            raise SpecError("target", f"{spec.target!r} has a single class; classification needs two or more")
        if counts.min() < spec.cv.folds:
            raise SpecError(
                "cv.folds",
                f"{spec.cv.folds} folds but class {_plain(counts.idxmin())!r} of {spec.target!r} has only {counts.min()} rows",
            )
        if len(counts) > 50:
            raise SpecError("task", f"{spec.target!r} has {len(counts)} classes; is this a regression target?")


def check_within_limits(spec: ExperimentSpec, limits: Limits | None = None) -> None:
    """The deployment's limits (MLFLEET_MAX_*), read now: parsing checks them too, but a spec object
    built earlier (or under other limits) reaches validation without being parsed again."""
    try:
        check_limits(spec, limits if limits is not None else Limits())
    except ValueError as err:
        field, message = str(err).split(": ", 1)
        raise SpecError(field, message) from None


def check_static(spec: ExperimentSpec) -> None:
    """Everything that does not need the data."""
    check_within_limits(spec)
    check_metric(spec)
    check_params(spec)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value users wrote (`2`, not `np.int64(2)`)."""
    return value.item() if hasattr(value, "item") else value
