"""
### drift_monitor

Runs whenever `feature_pipeline` updates the `mlfleet_features` asset. For every registered
model with a `champion` trained on Feast features, it compares the newest window of each feature
with the champion's training reference (PSI and the two-sample KS test, thresholds in
`MLFLEET_DRIFT_*`), writes a drift report under `$MLFLEET_HOME/drift/<model>/`, and triggers
`retrain` once for each drifted model (a run id derived from this run, so retries start no second)
with the drifted features named in the run's conf.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

from mlfleet.airflow.assets import FEATURES_ASSET
from mlfleet.airflow.dag_defaults import mlfleet_dag
from mlfleet.airflow.drift_tasks import check_drift


@mlfleet_dag(dag_id="drift_monitor", doc_md=__doc__, schedule=[FEATURES_ASSET], tag="monitoring",
             retry_delay=timedelta(seconds=30))
def drift_monitor():
    # One retrain per drifted model and drift report: the run id comes from the check, so a retried
    # trigger finds the run it started (skip_when_already_exists) rather than starting a second.
    TriggerDagRunOperator.partial(
        task_id="trigger_retrain",
        trigger_dag_id="retrain",
        wait_for_completion=False,
        skip_when_already_exists=True,
    ).expand_kwargs(check_drift())


drift_monitor()
