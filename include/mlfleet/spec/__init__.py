"""The experiment spec: models, loading and validation (no Airflow, no heavy imports)."""

from mlfleet.spec.errors import SpecError
from mlfleet.spec.loading import (
    load_project_spec,
    load_spec,
    load_spec_data,
    load_spec_file,
    load_spec_object,
    load_spec_param,
    load_spec_text,
    parse_spec,
)
from mlfleet.spec.model import MODEL_TYPES, ExperimentSpec, Range, Resources, param_domain
from mlfleet.spec.overrides import OVERRIDES, apply_overrides, given_overrides

__all__ = [
    "MODEL_TYPES",
    "OVERRIDES",
    "ExperimentSpec",
    "Range",
    "Resources",
    "SpecError",
    "apply_overrides",
    "given_overrides",
    "load_project_spec",
    "load_spec",
    "load_spec_data",
    "load_spec_file",
    "load_spec_object",
    "load_spec_param",
    "load_spec_text",
    "param_domain",
    "parse_spec",
]
