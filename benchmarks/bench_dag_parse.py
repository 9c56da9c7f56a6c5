"""Benchmark 4: each DAG file's parse time in a fresh interpreter with Airflow already imported.

The scheduler's DAG processor re-parses every file on every loop, so a slow or heavy DAG file
costs on every cycle; this measures it the way tests/dags/test_dag_integrity.py checks it. The
provider operators the DAGs use are imported with Airflow (the "Airflow import" column): the DAG
processor pre-imports what DAG files import at top (`parsing_pre_import_modules`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPEATS = 3
HEAVY = ("pandas", "sklearn", "pyspark", "feast", "boto3", "optuna", "mlflow", "xgboost", "lightgbm", "torch", "numpy")

_CODE = """
import sys, time, importlib.util
t0 = time.perf_counter()
import airflow.sdk, airflow.providers.standard.operators.trigger_dagrun
import airflow.providers.apache.spark.operators.spark_submit
import airflow.providers.amazon.aws.operators.sagemaker, airflow.providers.amazon.aws.operators.emr
import airflow.providers.cncf.kubernetes.operators.pod
airflow_s = time.perf_counter() - t0
before = set(sys.modules)
t = time.perf_counter()
spec = importlib.util.spec_from_file_location('dagfile', {path!r})
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
print(time.perf_counter() - t)
print(airflow_s)
print(','.join(sorted({{m.split('.')[0] for m in set(sys.modules) - before}})))
"""


def _parse_once(path: Path) -> tuple[float, float, set[str]]:
    out = subprocess.run([sys.executable, "-c", _CODE.format(path=str(path))], capture_output=True, text=True,
                         env=os.environ, check=True, timeout=300)
    seconds, airflow_s, modules = out.stdout.strip().splitlines()[-3:]
    return float(seconds), float(airflow_s), set(modules.split(",")) - {""}


def run(*, dags_dir: Path) -> list[dict[str, Any]]:
    """Median of REPEATS fresh interpreters per file, after one untimed parse of all files that fills the bytecode cache."""
    files = sorted(dags_dir.glob("*.py"))
    warm = "import runpy\n" + "".join(f"runpy.run_path({str(f)!r})\n" for f in files)
    subprocess.run([sys.executable, "-c", warm], env=os.environ, check=True, capture_output=True, timeout=300)
    rows = []
    for path in files:
        parse, imports, heavy = [], [], set()
        for _ in range(REPEATS):
            seconds, airflow_s, modules = _parse_once(path)
            parse.append(seconds)
            imports.append(airflow_s)
            heavy |= modules & set(HEAVY)
        rows.append({"file": path.name, "median_ms": statistics.median(parse) * 1000, "max_ms": max(parse) * 1000,
                     "airflow_import_s": statistics.median(imports), "heavy": sorted(heavy)})
    return rows
