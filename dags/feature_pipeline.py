"""
### feature_pipeline

Daily: raw events → offline feature tables → online store, for the run's data interval.

1. **feast_apply** registers the feature repo (a new view file is picked up here).
2. **etl_backend** picks where the PySpark feature job runs, from `MLFLEET_ETL_BACKEND` at run time:
   - `spark_local` (default): **compute_features**, the apache-spark provider's `SparkSubmitOperator`
     (local mode);
   - `emr_serverless`: **emr_job_runs** stages the same script and the feature repo in the object
     store, and **compute_features_emr** runs them with the Amazon provider's
     `EmrServerlessStartJobOperator` (deferrable by default). Raw events, the offline tables, the
     labels and the Feast registry then live in the object store (`MLFLEET_OBJECT_STORE_URI`).

   Either writes one date-partitioned table per feature view, and the churn labels; a re-run
   overwrites its days, never duplicates.
3. **materialize** loads the interval into the online store and updates the `mlfleet_features`
   asset, which schedules `drift_monitor`.

Params `start`/`end` (YYYY-MM-DD) override the interval for backfills.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Param, chain, dag, task

from mlfleet import airflow_tasks as tasks
from mlfleet.airflow_tasks import FEATURES_ASSET
from mlfleet.backends.emr_operator import FeatureJobRunOperator
from mlfleet.config import PROJECT_ROOT

FEATURE_JOB = str(PROJECT_ROOT / "include" / "mlfleet" / "etl" / "feature_job.py")
DATE = {"type": ["null", "string"], "pattern": r"^\d{4}-\d{2}-\d{2}$"}
# MLFLEET_ETL_BACKEND -> the first task of its path.
ETL_PATHS = {"spark_local": "job_args", "emr_serverless": "emr_job_runs"}


@dag(
    dag_id="feature_pipeline",
    schedule="@daily",
    start_date=datetime(2026, 8, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlfleet", "features"],
    doc_md=__doc__,
    default_args={"owner": "data-eng", "retries": 2, "retry_delay": timedelta(seconds=30)},
    params={"start": Param(None, **DATE), "end": Param(None, **DATE)},
)
def feature_pipeline():
    @task
    def interval(params=None, data_interval_start=None, data_interval_end=None):
        return tasks.feature_interval(params, data_interval_start, data_interval_end)

    @task
    def feast_apply():
        return tasks.feast_apply()

    @task.branch
    def etl_backend():
        return ETL_PATHS[tasks.etl_backend()]

    @task
    def job_args(days):
        return tasks.spark_job_args(days)

    @task
    def emr_job_runs(days, run_id=None):
        return tasks.emr_job_runs(days, run_id)

    @task(outlets=[FEATURES_ASSET], trigger_rule="none_failed_min_one_success")
    def materialize(days, outlet_events=None):
        summary = tasks.materialize(days)
        outlet_events[FEATURES_ASSET].extra = {"start": days["start"], "end": days["end"]}
        return summary

    days = interval()
    spark_args = job_args(days)
    compute = SparkSubmitOperator(
        task_id="compute_features",
        application=FEATURE_JOB,
        application_args=spark_args,
        conn_id="spark_local",
        name="mlfleet-features",
        conf={
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
            "spark.ui.enabled": "false",
        },
    )
    emr_runs = emr_job_runs(days)
    compute_emr = FeatureJobRunOperator.partial(task_id="compute_features_emr").expand_kwargs(emr_runs)
    chain(days, feast_apply(), etl_backend(), [spark_args, emr_runs])
    chain([compute, compute_emr], materialize(days))


feature_pipeline()
