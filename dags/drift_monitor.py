"""
### drift_monitor

Runs whenever `feature_pipeline` updates the `mlfleet_features` asset. For every registered
model with a `champion` trained on Feast features, it compares the newest window of each feature
with the champion's training reference (PSI and the two-sample KS test, thresholds in
`MLFLEET_DRIFT_*`), writes a drift report under `$MLFLEET_HOME/drift/<model>/`, and triggers
`retrain` for each drifted model with the drifted features named in the run's conf.
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
    TriggerDagRunOperator.partial(
        task_id="trigger_retrain",
        trigger_dag_id="retrain",
        wait_for_completion=False,
    ).expand(conf=check_drift())


drift_monitor()
