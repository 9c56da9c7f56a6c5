"""The experiment spec: models, loading and validation (no Airflow, no heavy imports)."""

from mlfleet.spec.errors import SpecError
from mlfleet.spec.loading import load_spec, parse_spec
from mlfleet.spec.model import MODEL_TYPES, ExperimentSpec, Range, Resources, param_domain

__all__ = [
    "MODEL_TYPES",
    "ExperimentSpec",
    "Range",
    "Resources",
    "SpecError",
    "load_spec",
    "param_domain",
    "parse_spec",
]
