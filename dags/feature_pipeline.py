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
3. **materialize** writes each customer's newest row of the interval to the online store and
   updates the `mlfleet_features` asset, which schedules `drift_monitor`.

Params `start`/`end` (YYYY-MM-DD, date pickers in the trigger form; both inclusive) override the
interval for backfills.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import chain

from mlfleet.airflow.dag_defaults import mlfleet_dag
from mlfleet.airflow.feature_tasks import emr_job_runs, etl_backend, feast_apply, interval, job_args, materialize
from mlfleet.airflow.params import feature_pipeline_params
from mlfleet.backends.emr_operator import FeatureJobRunOperator
from mlfleet.etl import FEATURE_JOB


@mlfleet_dag(dag_id="feature_pipeline", doc_md=__doc__, schedule="@daily", tag="features",
             start_date=datetime(2026, 8, 1), owner="data-eng", retries=2, retry_delay=timedelta(seconds=30),
             params=feature_pipeline_params())
def feature_pipeline():
    days = interval()
    spark_args = job_args(days)
    compute = SparkSubmitOperator(
        task_id="compute_features",
        application=str(FEATURE_JOB),
        application_args=spark_args,
        conn_id="spark_local",
        name="mlfleet-features",
        conf={
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
            "spark.ui.enabled": "false",
            # The serial collector for local Spark's 1 GB driver heap: G1's own structures cost more
            # RSS for no gain on a small machine, enough to keep this task's process tree over its memory
            # budget at the larger customer counts (docs/design-figures.md, "Why the settings").
            "spark.driver.extraJavaOptions": "-XX:+UseSerialGC",
        },
    )
    emr_runs = emr_job_runs(days)
    compute_emr = FeatureJobRunOperator.partial(task_id="compute_features_emr").expand_kwargs(emr_runs)
    chain(days, feast_apply(), etl_backend(), [spark_args, emr_runs])
    chain([compute, compute_emr], materialize(days))


feature_pipeline()
