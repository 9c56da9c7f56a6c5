"""Backends turn a batch of trials into work: local processes, SageMaker training jobs, Kubernetes pods.

All three run the same training entrypoint (DESIGN contract 1). The pure request builders live in
`sagemaker.py` and `kubernetes.py`; only `*_operator.py` and `object_store.py` import providers.
"""

from __future__ import annotations

from typing import Callable

from mlfleet.config import Settings
from mlfleet.spec import ExperimentSpec, SpecError

AVAILABLE_BACKENDS = ("local", "sagemaker", "kubernetes")


def check_backend(spec: ExperimentSpec, backend: str, *, settings: Settings, cuda_available: Callable[[], bool]) -> None:
    """Refuse, before any trial runs, a spec its backend cannot serve as configured."""
    if backend not in AVAILABLE_BACKENDS:
        raise SpecError("backend", f"unknown backend {backend!r}; choose one of {', '.join(AVAILABLE_BACKENDS)}")
    gpus = [i for i in range(len(spec.models)) if spec.resources_for(i).gpu > 0]
    if gpus and backend == "local" and not cuda_available():
        field = "resources.gpu" if spec.models[gpus[0]].resources is None else f"models[{gpus[0]}].resources.gpu"
        raise SpecError(field, "the local backend has no GPU on this machine; set gpu: 0 or choose a GPU backend "
                               "(backend: kubernetes or sagemaker)")
    if backend == "sagemaker":
        from mlfleet.backends import sagemaker

        sagemaker.check_settings(settings)
        sagemaker.check_budget(spec.budget.timeout_minutes)
        for i in range(len(spec.models)):
            field = "resources" if spec.models[i].resources is None else f"models[{i}].resources"
            sagemaker.choose_instance(spec.resources_for(i).model_dump(), settings.sagemaker_instance_types, field=field)
    elif backend == "kubernetes":
        from mlfleet.backends import kubernetes

        kubernetes.check_settings(settings)
