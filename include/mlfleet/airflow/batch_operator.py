"""One mapped task per batch, whatever the backend: the sweep's only batch step.

Why one operator that hands remote batches to the providers' operators instead of one mapped
operator per backend: every task process re-parses its DAG file, and a DAG file naming the
SageMaker and Kubernetes operators imports both providers (boto3, the kubernetes client) in
every task of every sweep, local ones included; and each backend's mapped task costs task
instances per round even when it maps over nothing. Here the provider operators are imported
only by a batch that runs on their backend, and they still do all the work: create or re-attach,
defer on their triggers, stop on kill. A deferral of the inner operator is re-raised as this
operator's, so the triggerer resumes this task, which hands the event back to a rebuilt inner one.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import TaskDeferred

RESUME_METHOD = "resume_remote"


class TrialBatchOperator(BaseOperator):
    """Run one batch of a sweep on its backend; return the batch summary (a small XCom)."""

    template_fields = ("sweep_ref", "batch")

    def __init__(self, *, sweep_ref: Any, batch: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sweep_ref = sweep_ref
        self.batch = batch
        self._remote: BaseOperator | None = None

    def execute(self, context: Any) -> dict[str, Any]:
        from mlfleet.config import get_settings
        from mlfleet.sweep import SweepContext, run_batch

        sweep = SweepContext.load(self.sweep_ref)
        if sweep.backend == "local":
            return run_batch(sweep, self.batch, settings=get_settings())
        return self._delegate(context, "execute", send=True)

    def resume_remote(self, context: Any, event: Any = None, *, inner_method: str,
                      inner_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Back from the triggerer: the inner operator's own completion method gets the event."""
        return self._delegate(context, inner_method, send=False, event=event, **(inner_kwargs or {}))

    def remote_operator(self, *, send: bool) -> BaseOperator:
        """The provider operator for this batch, built from the same pure request builders as `mlfleet plan`."""
        from mlfleet.config import get_settings
        from mlfleet.sweep import SweepContext, dispatch

        settings = get_settings()
        sweep = SweepContext.load(self.sweep_ref)
        if sweep.backend == "sagemaker":
            from mlfleet.backends.sagemaker_operator import BatchTrainingJobOperator

            return BatchTrainingJobOperator(task_id=self.task_id,
                                            **dispatch.sagemaker_job(sweep, self.batch, settings=settings, send=send))
        if sweep.backend == "kubernetes":
            from mlfleet.backends.kubernetes_operator import BatchPodOperator

            return BatchPodOperator(task_id=self.task_id,
                                    **dispatch.kubernetes_pod(sweep, self.batch, settings=settings, send=send))
        raise ValueError(f"sweep {sweep.experiment}/{sweep.run_id}: unknown backend {sweep.backend!r}")

    def _delegate(self, context: Any, method: str, *, send: bool, **kwargs: Any) -> dict[str, Any]:
        self._remote = self.remote_operator(send=send)
        try:
            return getattr(self._remote, method)(context, **kwargs)
        except TaskDeferred as deferred:
            raise TaskDeferred(trigger=deferred.trigger, method_name=RESUME_METHOD, timeout=deferred.timeout,
                               kwargs={"inner_method": deferred.method_name,
                                       "inner_kwargs": deferred.kwargs or {}}) from None

    def on_kill(self) -> None:
        """A killed task stops its job or deletes its pod, as the provider operator would; a local
        batch kills its training process group (Airflow calls this in the task process, from its
        SIGTERM handler or on execution_timeout, while `execute` waits for that process)."""
        if self._remote is not None:
            self._remote.on_kill()
            return
        from mlfleet.backends import local

        stopped = local.stop_trainers()
        if stopped:
            self.log.info("Stopped the local training process(es) %s with their workers.", stopped)
