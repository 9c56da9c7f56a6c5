"""The Amazon provider's EmrServerlessStartJobOperator, with the failure reason kept when deferred.

amazon provider 9.39.0: when a deferred job run fails, the trigger's event carries the service's
reason in `message` but no `job_details`, and the provider's `execute_complete` reads
`event["job_details"]` first, so the task dies on `KeyError: 'job_details'` and the log never says
why the job failed (seen in tests/integration/test_emr_serverless.py). The run has already ended
on the service, so there is nothing to cancel: fail with the reason instead.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.emr import EmrServerlessStartJobOperator
from airflow.providers.common.compat.sdk import AirflowException


class FeatureJobRunOperator(EmrServerlessStartJobOperator):
    """Runs the feature job on EMR Serverless; everything but a deferred failure is the provider's."""

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        if event and event.get("status") != "success" and "job_details" not in event:
            raise AirflowException(event.get("message") or f"EMR Serverless job run failed: {event}")
        return super().execute_complete(context, event)
