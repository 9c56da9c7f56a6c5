"""Every DAG imports through Airflow's DagBag, is cheap to parse, and has owner, tags and retries."""

from __future__ import annotations

import os
import subprocess
import sys
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
