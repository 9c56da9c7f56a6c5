"""
### drift_monitor

Runs whenever `feature_pipeline` updates the `mlfleet_features` asset. For every registered
model with a `champion` trained on Feast features, it compares the newest window of each feature
with the champion's training reference (PSI and the two-sample KS test, thresholds in
`MLFLEET_DRIFT_*`), writes a drift report under `$MLFLEET_HOME/drift/<model>/`, and triggers
`retrain` for each drifted model with the drifted features named in the run's conf.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from mlfleet import airflow_tasks as tasks
from mlfleet.airflow_tasks import FEATURES_ASSET



@dag(
    dag_id="drift_monitor",
    schedule=[FEATURES_ASSET],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlfleet", "monitoring"],
    doc_md=__doc__,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
)
def drift_monitor():
    @task
    def check_drift():
        return tasks.check_drift()

    TriggerDagRunOperator.partial(
        task_id="trigger_retrain",
        trigger_dag_id="retrain",
        wait_for_completion=False,
    ).expand(conf=check_drift())


drift_monitor()
