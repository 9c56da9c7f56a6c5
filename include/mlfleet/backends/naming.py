"""Deterministic names for remote work: job names, pod names and labels, object-store keys.

A batch's identity (experiment, sweep run, batch id) gives every name, so a retried task or a
restarted scheduler finds the job or pod it started instead of paying twice (DESIGN contract 4).
Nothing here talks to a service: the names are pure functions, snapshot-tested.
"""

from __future__ import annotations

import re

from mlfleet.storage import short_digest

# SageMaker: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}; a Kubernetes pod name is a DNS-1123 subdomain and a
# label value at most 63 characters. Names below satisfy all three.
MAX_NAME = 63
MAX_ATTEMPTS = 20
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def job_name(*, experiment: str, run_id: str, batch_id: str, attempt: int = 1) -> str:
    """`<experiment>-<10 hex>[-a<attempt>]`: the same batch of the same run always gets the same name.

    A SageMaker job name can never be reused, even after the job failed; a retry after a failed
    or stopped job takes the next attempt suffix, found by describing the names in order.
    """
    digest = short_digest(f"{experiment}/{run_id}/{batch_id}", 10)
    stem = re.sub(r"-+", "-", experiment.lower())[:40].strip("-") or "mlfleet"
    return attempt_name(f"{stem}-{digest}", attempt)


def attempt_name(base: str, attempt: int) -> str:
    """`base` for the first attempt, `base-a<n>` after n-1 failed or stopped jobs."""
    if not 1 <= attempt <= MAX_ATTEMPTS:
        raise ValueError(f"attempt {attempt} out of range 1..{MAX_ATTEMPTS}")
    return base if attempt == 1 else f"{base}-a{attempt}"


def labels(*, experiment: str, run_id: str, batch_id: str) -> dict[str, str]:
    """Labels that say what a pod or job belongs to (queryable: `kubectl get pods -l mlfleet.io/run=...`)."""
    return {
        "app.kubernetes.io/name": "mlfleet-trial",
        "app.kubernetes.io/part-of": "mlfleet",
        "mlfleet.io/experiment": label_value(experiment),
        "mlfleet.io/run": label_value(run_id),
        "mlfleet.io/batch": label_value(batch_id),
    }


def label_value(value: str) -> str:
    """At most 63 characters, alphanumeric at both ends: a spec name may be `churn-`, a label value not."""
    return value[:MAX_NAME].strip("-_.")


def label_problems(values: dict[str, str]) -> list[str]:
    """Kubernetes label syntax, which the OpenAPI schemas do not check: key prefix/name and value."""
    problems = []
    for key, value in values.items():
        prefix, _, name = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
            problems.append(f"label key {key!r}: prefix must be a DNS subdomain")
        if not name or len(name) > MAX_NAME or not _LABEL_NAME.match(name):
            problems.append(f"label key {key!r}: name must be 1-63 alphanumerics, '-', '_' or '.'")
        if not isinstance(value, str) or len(value) > MAX_NAME or not _LABEL_VALUE.match(value):
            problems.append(f"label {key}={value!r}: value must be <= 63 alphanumerics, '-', '_' or '.'")
    return problems


def is_pod_name(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


def is_dns_label(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(_DNS_LABEL.match(name))


# Object-store layout under MLFLEET_OBJECT_STORE_URI ---------------------------------------------

def dataset_uri(root: str, sha256: str, filename: str) -> str:
    """Content-addressed: the same training set is uploaded once, whatever sweep asks for it."""
    return f"{root}/datasets/{sha256}/{filename}"


def run_uri(root: str, experiment: str, run_id: str) -> str:
    return f"{root}/experiments/{experiment}/{run_id}"


def batch_uri(root: str, experiment: str, run_id: str, batch_id: str) -> str:
    """Everything of one batch: config channel, SageMaker output, checkpoints, a pod's results."""
    return f"{run_uri(root, experiment, run_id)}/batches/{batch_id}"


def config_uri(root: str, experiment: str, run_id: str, batch_id: str) -> str:
    """The batch's `config` channel: its trials and feature columns (job.json)."""
    return f"{batch_uri(root, experiment, run_id, batch_id)}/config/job.json"


def code_uri(root: str, sha256: str, filename: str) -> str:
    return f"{root}/code/{sha256}/{filename}"
