"""Errors a retry cannot fix fail the task at once (`AirflowFailException`), with the field named."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from airflow.sdk.exceptions import AirflowFailException

from mlfleet.spec import SpecError


@contextmanager
def fail_without_retry(what: str = "spec") -> Iterator[None]:
    """Turn a SpecError into `AirflowFailException("invalid <what>: <field>: <message>")`."""
    try:
        yield
    except SpecError as err:
        raise AirflowFailException(f"invalid {what}: {err}") from None
