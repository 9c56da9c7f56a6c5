"""One round of a sweep as Airflow tasks, shared by experiment_sweep and retrain.

    prepare ──▶ run_batch (mapped: one task per batch) ──▶ end_round

`prepare` returns the round's batches and pushes the sweep's ref (XCom key "sweep") and the
round index ("round"); `end_round` triggers the next round as a run of the same DAG while rounds
remain, and finishes the sweep (finalize, or a retrain's decision) after the last. One task ends
the round either way, so no task process starts only to be skipped. See mlfleet.sweep.rounds
and docs/rounds.md for why rounds are continuation runs.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import chain

from mlfleet.airflow.batch_operator import TrialBatchOperator


class EndRoundOperator(TriggerDagRunOperator):
    """After the last round: `finish` the sweep. Before: trigger the next round, once.

    The next round's run id is the sweep's and the round's, so a retried task finds the run it
    created (and is skipped) instead of starting a second; the current run ends as soon as the
    next one is queued. Its conf proves it is the sweep's own continuation (docs/rounds.md).
    Subclasses say what finishing means.
    """

    template_fields = (*TriggerDagRunOperator.template_fields, "sweep_ref", "round_index")

    def __init__(self, *, sweep_ref: Any, round_index: Any, **kwargs: Any) -> None:
        kwargs.update(wait_for_completion=False, skip_when_already_exists=True, logical_date=None)
        super().__init__(**kwargs)
        self.sweep_ref = sweep_ref
        self.round_index = round_index

    def execute(self, context: Any) -> Any:
        from mlfleet.sweep import SweepContext
        from mlfleet.sweep.continuation import next_continuation

        sweep = SweepContext.load(self.sweep_ref)
        # The conf carries the proof of the next round (mlfleet.sweep.continuation), which only a
        # worker can compute: the next run's prepare refuses a conf without it.
        following = next_continuation(sweep, dag_id=str(self.trigger_dag_id), round_index=int(self.round_index))
        if following is None:
            return self.finish(sweep)
        self.log.info("Round %s of %s done; the next runs as %s.", int(self.round_index) + 1, sweep.rounds,
                      following["trigger_run_id"])
        self.trigger_run_id, self.conf = following["trigger_run_id"], following["conf"]
        return super().execute(context)

    def finish(self, sweep: Any) -> Any:
        raise NotImplementedError


def sweep_round(prepared: Any, *, dag_id: str, end: type[EndRoundOperator]) -> Any:
    """Wire run_batch and end_round after `prepared` (the first task's XComArg)."""
    batches = TrialBatchOperator.partial(task_id="run_batch", sweep_ref=prepared["sweep"]).expand(batch=prepared)
    ended = end(task_id="end_round", trigger_dag_id=dag_id, sweep_ref=prepared["sweep"],
                round_index=prepared["round"], trigger_rule="none_failed")
    chain(batches, ended)
    return ended
