"""Every DAG imports through Airflow's DagBag, is cheap to parse, and has owner, tags, retries and
every task an execution_timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
EXPECTED = {"feature_pipeline", "experiment_sweep", "drift_monitor", "retrain"}
HEAVY = ("pandas", "sklearn", "pyspark", "feast", "boto3", "optuna", "mlflow", "xgboost", "lightgbm", "torch", "numpy")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_expected_dags_present(dagbag) -> None:
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_owner_tags_retries(dagbag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.tags and "mlfleet" in dag.tags
    assert dag.doc_md and dag_id in dag.doc_md
    for task in dag.tasks:
        assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} has no real owner"
        assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_every_task_has_an_execution_timeout(dagbag, dag_id: str) -> None:
    """No task holds a worker slot forever, whoever triggered it. A batch task may run as long as the
    longest batch any spec may ask for (MLFLEET_MAX_TIMEOUT_MINUTES), not longer than that plus a task's own time."""
    from mlfleet.config import Limits

    limits = Limits()
    longest = timedelta(minutes=limits.max_timeout_minutes + limits.task_timeout_minutes)
    dag = dagbag.dags[dag_id]
    for task in dag.tasks:
        timeout = task.execution_timeout
        assert isinstance(timeout, timedelta) and timedelta(0) < timeout <= longest, (
            f"{dag_id}.{task.task_id} has execution_timeout {timeout!r}")
        if task.task_id == "run_batch":
            assert timeout >= timedelta(minutes=limits.max_timeout_minutes), f"{dag_id}.run_batch stops a batch early"
        elif task.task_id != "end_round":  # end_round shares run_batch's (finalize is made in mlfleet.airflow.rounds)
            assert timeout == timedelta(minutes=limits.task_timeout_minutes), f"{dag_id}.{task.task_id}: {timeout!r}"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parses_fast_without_heavy_imports(path: Path) -> None:
    """Parse each file in a fresh interpreter after Airflow and the provider operators are loaded.

    The DAG processor pre-imports what DAG files import at top (`parsing_pre_import_modules`), so
    provider operators cost once per processor; our own code must not add heavy libraries.
    Parse time itself is measured by `make bench`, not asserted here.
    """
    code = (
        "import sys, time, importlib.util\n"
        "import airflow.sdk, airflow.providers.standard.operators.trigger_dagrun\n"
        "import airflow.providers.apache.spark.operators.spark_submit\n"
        "import airflow.providers.amazon.aws.operators.sagemaker, airflow.providers.amazon.aws.operators.emr\n"
        "import airflow.providers.cncf.kubernetes.operators.pod\n"
        "before = set(sys.modules)\n"
        "t = time.perf_counter()\n"
        f"spec = importlib.util.spec_from_file_location('dagfile', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(time.perf_counter() - t)\n"
        "print(','.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    _seconds, new_modules = out.stdout.strip().splitlines()[-2:]
    heavy = sorted(set(new_modules.split(",")) & set(HEAVY))
    assert heavy == [], f"{path.name} imports {heavy} at parse time"
