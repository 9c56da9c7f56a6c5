"""The experiment spec of shared/experiment-spec.md as pydantic models.

Structural checks live here, with the deployment's limits on what a spec may buy (`check_limits`,
MLFLEET_MAX_*, read whenever a spec is validated); checks that need the data or the model zoo
(target column, known estimator parameters, scorer names) live in `validate.py` so this module
stays import-light.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mlfleet.config import Limits

MODEL_TYPES = ("xgboost", "lightgbm", "random_forest", "logistic_l1", "mlp")
# Lower-case letters, digits and dashes, a letter or digit at both ends: the name goes into SageMaker
# job names and Kubernetes pod names and labels, and neither takes a leading or trailing dash.
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"


class _Strict(BaseModel):
    # No .inf or .nan anywhere: an infinite timeout never fires, an infinite cpu request never schedules.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Resources(_Strict):
    cpu: float = Field(default=1, gt=0)
    memory_gb: float = Field(default=2, gt=0)
    gpu: int = Field(default=0, ge=0)


class Dataset(_Strict):
    feature_service: str | None = None
    path: str | None = None
    builtin: str | None = None
    # path datasets: the feature columns (default: every column but the target)
    features: list[str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Dataset":
        given = [k for k in ("feature_service", "path", "builtin") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of feature_service, path, builtin"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class CV(_Strict):
    folds: int = Field(default=5, ge=2, le=50)
    seed: int = 0


class Prune(_Strict):
    """Stop a trial early, inside its batch, once its folds show it is clearly worse than the batch's leader.

    After `min_folds` folds (and after each fold from then on) a trial whose fold scores are worse
    than the leader's on the same folds with Wilcoxon signed-rank p < `p_value` runs no more folds.
    """

    min_folds: int = Field(default=2, ge=2)
    p_value: float = Field(default=0.1, gt=0, lt=1)


class Search(_Strict):
    strategy: Literal["grid", "random", "bayes"] = "grid"
    n_trials: int | None = Field(
        default=None, ge=1,
        description="Random and bayes search: how many trials in all (a grid runs every combination).")
    batch_size: int | None = Field(default=None, ge=1)
    # `prune: true` is `prune: {}` (the defaults); `prune: false` or no key: every fold of every trial runs
    prune: Prune | None = None

    @field_validator("prune", mode="before")
    @classmethod
    def _prune_shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False or value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(f"give true, false or {{min_folds: 2, p_value: 0.1}}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _trials_needed(self) -> "Search":
        if self.strategy in ("random", "bayes") and self.n_trials is None:
            raise ValueError(f"search.n_trials: required for strategy {self.strategy!r}; give how many trials in all")
        return self


class Range(_Strict):
    """A numeric search range for random and bayes search: `{int: [2, 10]}` or `{float: [..], log: true}`."""

    kind: Literal["int", "float"]
    low: float
    high: float
    log: bool = False


def param_domain(value: Any) -> list[Any] | Range | Any:
    """A param's search domain: a list (choices), a Range, or a fixed scalar."""
    if isinstance(value, dict) and value.keys() & {"int", "float"}:
        kind = "int" if "int" in value else "float"
        low, high = value[kind]
        return Range(kind=kind, low=low, high=high, log=bool(value.get("log", False)))
    return value


class ModelEntry(_Strict):
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    resources: Resources | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in MODEL_TYPES:
            raise ValueError(f"unknown model type {value!r}; choose one of {', '.join(MODEL_TYPES)}")
        return value


class Budget(_Strict):
    max_parallel: int = Field(
        default=8, ge=1, description="Batches (jobs, pods) a round runs side by side, at most; a bayes round's default "
                                     "batch_size.")
    timeout_minutes: float = Field(
        default=60, gt=0, description="Minutes one batch may run; a batch still running then is stopped and its trials "
                                      "fail.")


class ExperimentSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=48)
    task: Literal["classification", "regression"]
    target: str = Field(min_length=1)
    metric: str
    dataset: Dataset
    cv: CV = CV()
    search: Search = Search()
    models: list[ModelEntry] = Field(min_length=1)
    resources: Resources = Resources()
    backend: Literal["local", "sagemaker", "kubernetes"] | None = Field(
        default=None, description="Where trials run; unset: MLFLEET_BACKEND.")
    budget: Budget = Budget()

    @field_validator("search")
    @classmethod
    def _prune_can_save_a_fold(cls, search: Search, info: ValidationInfo) -> Search:
        cv = info.data.get("cv")
        if search.prune is None or cv is None:
            return search
        _check_prune(search.prune, cv.folds)
        return search

    @model_validator(mode="after")
    def _param_shapes(self, info: ValidationInfo) -> "ExperimentSpec":
        for i, model in enumerate(self.models):
            for key, value in model.params.items():
                _check_param(f"models[{i}].params.{key}", value, self.search.strategy)
        check_limits(self, spec_limits(info))
        return self

    def resources_for(self, model_index: int) -> Resources:
        return self.models[model_index].resources or self.resources


def grid_size(params: dict[str, Any]) -> int:
    """How many trials a model's grid expands to, counted (a list is one axis, a scalar is fixed)."""
    return math.prod(len(v) if isinstance(v, list) else 1 for v in params.values())


def _check_grid_size(models: list[ModelEntry], max_trials: int) -> None:
    """Refuse a grid too large to run by counting it, never by expanding it (a few lists of a few
    hundred values multiply to more trials than memory holds)."""
    sizes = [grid_size(model.params) for model in models]
    if sum(sizes) > max_trials:
        biggest = max(range(len(sizes)), key=sizes.__getitem__)
        raise ValueError(f"models: the grid has {sum(sizes):,} trials, more than {max_trials:,} (the deployment's "
                         f"limit, {_variable('max_trials')}; models[{biggest}] alone has {sizes[biggest]:,}); "
                         "narrow the lists or use random search")


def spec_limits(info: ValidationInfo | None = None) -> Limits:
    """The deployment's limits, read now (MLFLEET_MAX_*), unless the caller validates with its own
    (`ExperimentSpec.model_validate(data, context={"limits": limits})`)."""
    given = (info.context or {}).get("limits") if info is not None else None
    return given if isinstance(given, Limits) else Limits()


def _variable(setting: str) -> str:
    return f"MLFLEET_{setting.upper()}"


def _above(field: str, value: float, limit: float, setting: str) -> ValueError:
    return ValueError(f"{field}: {_number(value)} is above the deployment's limit {_number(limit)} "
                      f"({_variable(setting)})")


def _number(value: float) -> str:
    """`8`, `1e+09`, `0.5`: an int as written, a float short."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def check_limits(spec: ExperimentSpec, limits: Limits) -> None:
    """Refuse a spec that asks for more than the deployment allows: every field that buys machines
    or time (a batch's timeout, batches side by side, a trial's resources, trials, rounds), each
    named with its setting.

    Raised as ValueError with the field in front, like the other model-level checks.
    """
    budget, search = spec.budget, spec.search
    if search.strategy == "grid":
        _check_grid_size(spec.models, limits.max_trials)
    checks: list[tuple[str, float, float, str]] = [
        ("budget.timeout_minutes", budget.timeout_minutes, limits.max_timeout_minutes, "max_timeout_minutes"),
        ("budget.max_parallel", budget.max_parallel, limits.max_parallel, "max_parallel"),
    ]
    if search.n_trials is not None:
        checks.append(("search.n_trials", search.n_trials, limits.max_trials, "max_trials"))
    if search.batch_size is not None:
        checks.append(("search.batch_size", search.batch_size, limits.max_batch_size, "max_batch_size"))
    sections = [("resources", spec.resources)] + [
        (f"models[{i}].resources", model.resources) for i, model in enumerate(spec.models) if model.resources]
    for where, resources in sections:
        checks += [(f"{where}.cpu", resources.cpu, limits.max_cpu, "max_cpu"),
                   (f"{where}.memory_gb", resources.memory_gb, limits.max_memory_gb, "max_memory_gb"),
                   (f"{where}.gpu", resources.gpu, limits.max_gpu, "max_gpu")]
    for field, value, limit, setting in checks:
        if value > limit:
            raise _above(field, value, limit, setting)
    if search.strategy == "bayes" and search.n_trials:
        per_round = search.batch_size or budget.max_parallel
        rounds = math.ceil(search.n_trials / per_round)
        if rounds > limits.max_rounds:
            raise ValueError(
                f"search.n_trials: {search.n_trials} trials, {per_round} a round (search.batch_size, else "
                f"budget.max_parallel), are {rounds} rounds, above the deployment's limit {limits.max_rounds} "
                f"({_variable('max_rounds')}); give a larger search.batch_size or fewer trials")


def _check_prune(prune: Prune, folds: int) -> None:
    # A decision comes after fold n (n >= min_folds) and saves a fold only when n < folds. With n
    # paired folds the one-sided signed-rank test's smallest p is 1/2**n (every fold worse).
    if prune.min_folds >= folds:
        raise ValueError(
            f"search.prune.min_folds: {prune.min_folds} leaves no fold to skip with cv.folds {folds}; "
            f"give at most {folds - 1}"
        )
    if 0.5 ** (folds - 1) >= prune.p_value:
        reachable = 0.5 ** (folds - 1)
        raise ValueError(
            f"search.prune.p_value: {prune.p_value} can never prune with cv.folds {folds} (after {folds - 1} "
            f"folds the smallest p is {reachable:.4g}); give p_value above {reachable:.4g} or more folds"
        )


def _check_param(field: str, value: Any, strategy: str) -> None:
    # Raised as ValueError with the field path in front; loading turns it into a SpecError.
    if isinstance(value, list):
        if not value:
            raise ValueError(f"{field}: empty list; give at least one value")
        return
    if isinstance(value, dict):
        keys = set(value)
        kinds = keys & {"int", "float"}
        if len(kinds) != 1 or keys - {"int", "float", "log"}:
            raise ValueError(
                f"{field}: a range is {{int: [low, high]}} or {{float: [low, high], log: true}}, got {value!r}"
            )
        kind = kinds.pop()
        bounds = value[kind]
        if strategy == "grid":
            raise ValueError(f"{field}: a range needs strategy random or bayes; grid takes a list")
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        ):
            raise ValueError(f"{field}.{kind}: give [low, high] as two numbers, got {bounds!r}")
        low, high = bounds
        if kind == "int" and not all(float(b).is_integer() for b in bounds):
            raise ValueError(f"{field}.int: bounds must be integers, got {bounds!r}")
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise ValueError(f"{field}.{kind}: bad range [{low}, {high}]; low must be < high")
        if value.get("log") and low <= 0:
            raise ValueError(f"{field}.{kind}: a log range needs low > 0, got {low}")
        return
    if strategy == "grid":
        raise ValueError(f"{field}: grid values must be a list, got {value!r}")
    # random/bayes: a bare scalar is a fixed value
