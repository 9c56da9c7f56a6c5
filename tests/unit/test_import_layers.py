"""The import direction of DESIGN.md, enforced on the source (every import, also inside functions).

- Only `mlfleet.airflow` and `mlfleet.backends` import Airflow; only `mlfleet.backends` imports a
  provider (`airflow.providers.*`), so a DAG file's provider imports are all behind one folder.
  The one exception is Airflow's standard provider in `mlfleet.airflow`: it holds the operators
  that Airflow 3 moved out of core (TriggerDagRunOperator) and is installed with every Airflow.
- A layer imports only from itself and the layers below it, so e.g. `trials` can never reach
  up into `sweep`, and the training entrypoint (the trial image) never pulls in Airflow.
- Nothing imports `dags/`.

Imports under `if TYPE_CHECKING:` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "mlfleet"

# Lowest first. A module may import from its own layer and any layer listed before it.
LAYERS: list[set[str]] = [
    {"storage", "config", "shutdown"},
    {"spec", "training"},
    {"trials", "fit_history", "tuning", "results", "etl"},
    {"backends"},
    {"features", "drift"},
    {"sweep"},
    {"retraining"},
    {"devstack", "ui"},
    {"airflow", "demo", "cli"},
]
AIRFLOW_ALLOWED = {"airflow", "backends"}
PROVIDERS_ALLOWED = {"backends"}
STANDARD_PROVIDER = "airflow.providers.standard"
# What the trial image holds: training and what it imports, never Airflow or the orchestration side.
TRIAL_IMAGE = {"training", "storage", "shutdown"}


def _unit(module: str) -> str:
    """`mlfleet.sweep.prepare` -> `sweep`; `mlfleet.cli` -> `cli`."""
    return module.split(".")[1]


def _layer(unit: str) -> int:
    for index, members in enumerate(LAYERS):
        if unit in members:
            return index
    raise AssertionError(f"mlfleet.{unit} is in no layer of LAYERS; add it where it belongs")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import in the source, outside `if TYPE_CHECKING:` blocks."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "mlfleet":  # `from mlfleet import sweep`
                found.extend((node.lineno, f"mlfleet.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def problems(module: str, source: str) -> list[str]:
    """Every import in `module` (e.g. "mlfleet.trials") that breaks the rules above."""
    unit, found = _unit(module), []
    for line, name in imports_of(source):
        where = f"{module}:{line} imports {name}"
        top = name.split(".")[0]
        if top == "airflow" and unit not in AIRFLOW_ALLOWED:
            found.append(f"{where}: only mlfleet.airflow and mlfleet.backends may import Airflow")
        standard = name.startswith(STANDARD_PROVIDER) and unit == "airflow"
        if name.startswith("airflow.providers") and unit not in PROVIDERS_ALLOWED and not standard:
            found.append(f"{where}: only mlfleet.backends may import a provider")
        if top in ("dags",):
            found.append(f"{where}: nothing imports dags/")
        if top == "mlfleet" and name != "mlfleet":
            target = _unit(name)
            if _layer(target) > _layer(unit):
                found.append(f"{where}: {unit} sits below {target} (see LAYERS)")
            if unit in TRIAL_IMAGE and target not in TRIAL_IMAGE:
                found.append(f"{where}: the trial image holds only {sorted(TRIAL_IMAGE)}")
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            out.append((".".join(parts), path))
    return out


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_module_keeps_the_import_direction(module: str, path: Path) -> None:
    assert problems(module, path.read_text()) == []


def test_every_folder_of_the_package_is_in_a_layer() -> None:
    units = {_unit(module) for module, _ in _modules()}
    for unit in units:
        _layer(unit)
    assert units == set().union(*LAYERS), "LAYERS names a folder that no longer exists"


@pytest.mark.parametrize("source,unit,words", [
    ("from airflow.sdk import task\n", "trials", "only mlfleet.airflow and mlfleet.backends may import Airflow"),
    ("def f():\n    import airflow\n", "spec", "may import Airflow"),
    ("from airflow.providers.amazon.aws.hooks.s3 import S3Hook\n", "features", "only mlfleet.backends may import a provider"),
    ("from airflow.providers.standard.operators.empty import EmptyOperator\n", "sweep", "may import a provider"),
    ("from airflow.providers.amazon.aws.hooks.s3 import S3Hook\n", "airflow", "may import a provider"),
    ("from mlfleet import sweep\n", "trials", "trials sits below sweep"),
    ("from mlfleet.airflow.assets import FEATURES_ASSET\n", "sweep", "sweep sits below airflow"),
    ("from mlfleet.results import read_leaderboard\n", "training", "the trial image holds only"),
    ("import dags.experiment_sweep\n", "cli", "nothing imports dags/"),
])
def test_a_breaking_import_is_named(source: str, unit: str, words: str) -> None:
    found = problems(f"mlfleet.{unit}.example", source)
    assert [p for p in found if words in p and p.startswith(f"mlfleet.{unit}.example:")], found


def test_type_only_imports_and_allowed_imports_pass() -> None:
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mlfleet.sweep.context import SweepContext\n"
              "from mlfleet.storage import write_json_atomic\nfrom mlfleet.spec import SpecError\n")
    assert problems("mlfleet.backends.sagemaker", source) == []
    assert problems("mlfleet.backends.s3", "from airflow.providers.amazon.aws.hooks.s3 import S3Hook\n") == []
