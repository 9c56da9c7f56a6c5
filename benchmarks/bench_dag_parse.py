"""Benchmark 4: each DAG file's parse time in a fresh interpreter, after what the DAG processor pre-imports.

The scheduler's DAG processor re-parses every file on every loop, and every task process parses
its DAG file again, so a slow or heavy DAG file costs on every cycle and in every task. Airflow
3.3's DAG processor pre-imports (`parsing_pre_import_modules`) only the modules named `airflow.*`
that a DAG file imports itself (`iter_airflow_imports`); this pre-imports exactly those (the
"Airflow import" column) and times the rest: mlfleet's own modules and whatever they pull in.
"""

from __future__ import annotations

import ast
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPEATS = 3
HEAVY = ("pandas", "sklearn", "pyspark", "feast", "boto3", "optuna", "mlflow", "xgboost", "lightgbm", "torch", "numpy")

_CODE = """
import sys, time, importlib, importlib.util
t0 = time.perf_counter()
for name in {preimport!r}:
    importlib.import_module(name)
airflow_s = time.perf_counter() - t0
before = set(sys.modules)
t = time.perf_counter()
spec = importlib.util.spec_from_file_location('dagfile', {path!r})
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
print(time.perf_counter() - t)
print(airflow_s)
print(','.join(sorted({{m.split('.')[0] for m in set(sys.modules) - before}})))
"""


def airflow_imports(path: Path) -> list[str]:
    """The `airflow.*` modules a DAG file imports at top: what the DAG processor pre-imports for it."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return ["airflow.sdk", *sorted({n for n in names if n.startswith("airflow.")} - {"airflow.sdk"})]


def _parse_once(path: Path) -> tuple[float, float, set[str]]:
    code = _CODE.format(path=str(path), preimport=airflow_imports(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
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
