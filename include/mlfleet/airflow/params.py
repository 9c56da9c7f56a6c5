"""Trigger-form params, with their JSON schemas derived from the models they feed."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from mlfleet.spec import ExperimentSpec

ISO_DATE: dict[str, Any] = {"type": ["null", "string"], "pattern": r"^\d{4}-\d{2}-\d{2}$"}


def spec_param(default: str) -> Param:
    """An experiment spec object, or the path of a spec file; an object must have the model's required fields."""
    required = [name for name, field in ExperimentSpec.model_fields.items() if field.is_required()]
    return Param(
        default,
        description="An experiment spec object (see experiment-spec.md) or the path of a spec YAML file.",
        type=["object", "string"],
        minLength=1,
        required=required,
    )


def date_param() -> Param:
    """An optional YYYY-MM-DD day (feature_pipeline's backfill bounds)."""
    return Param(None, **ISO_DATE)
