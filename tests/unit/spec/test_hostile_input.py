"""Hostile specs and trigger confs (hypothesis): every one is refused before anything runs, with the
field named, and nothing is written. The CLI exits 2; a DAG run's first task fails (see
tests/dags/test_bad_spec_run.py and test_trigger_form_run.py for whole runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings as hsettings, strategies as st

from mlfleet.config import Settings
from mlfleet.spec import ExperimentSpec, SpecError
from mlfleet.spec.model import CV, Budget, Dataset, Resources, Search
from mlfleet.spec.loading import load_yaml_text
from mlfleet.sweep.prepare import prepare, validate

VALID: dict[str, Any] = {
    "name": "hostile", "task": "classification", "target": "target", "metric": "accuracy",
    "dataset": {"builtin": "iris"}, "cv": {"folds": 3, "seed": 0},
    "models": [{"type": "logistic_l1", "params": {"C": [0.1, 1.0]}}],
}
TOP_FIELDS = set(ExperimentSpec.model_fields) | {"spec"}
SECTION_FIELDS = {name for model in (CV, Dataset, Search, Budget, Resources) for name in model.model_fields}
HYPOTHESIS = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MLFLEET = str(Path(sys.executable).parent / "mlfleet")


@pytest.fixture
def roots(tmp_path: Path) -> Settings:
    """A home and one allowed data root beside it; a `secret.parquet` outside every root."""
    (tmp_path / "data").mkdir()
    return Settings(home=tmp_path / "home", data_roots=str(tmp_path / "data"))


def _written(settings: Settings) -> list[str]:
    home = settings.home_dir
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else []


def _refused(spec: Any, settings: Settings) -> SpecError:
    before = _written(settings)
    with pytest.raises(SpecError) as caught:
        prepare(spec, settings=settings, run_id="20261201T000000-0000")
    assert caught.value.field, caught.value  # every refusal names what is wrong
    assert _written(settings) == before, "a refused spec wrote something"
    return caught.value


# Values of the wrong type for each field; None only where the field is required.
WRONG = st.one_of(st.integers(), st.floats(allow_nan=True), st.booleans(), st.lists(st.integers(), max_size=3),
                  st.text(max_size=20), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@HYPOTHESIS
@given(field=st.sampled_from(["task", "metric", "dataset", "cv", "search", "models", "resources", "backend",
                              "budget"]), value=WRONG)
def test_a_field_of_the_wrong_type_is_refused_naming_it(roots: Settings, field: str, value: Any) -> None:
    spec = {**VALID, field: value}
    try:
        ExperimentSpec.model_validate(spec)
        accepted = True
    except Exception:  # noqa: BLE001 - only values the model refuses are hostile here
        accepted = False
    assume(not accepted)  # hypothesis fails the test if it can find (almost) no refused value
    error = _refused(spec, roots)
    assert error.field.startswith(field), error


@HYPOTHESIS
@given(key=st.text(min_size=1, max_size=30).filter(lambda k: k not in TOP_FIELDS | SECTION_FIELDS),
       where=st.sampled_from(["", "dataset", "cv", "search", "budget", "resources"]))
def test_an_unknown_key_anywhere_is_refused_naming_it(roots: Settings, key: str, where: str) -> None:
    spec = json.loads(json.dumps(VALID))
    (spec.setdefault(where, {}) if where else spec)[key] = 1
    error = _refused(spec, roots)
    assert error.field == (f"{where}.{key}" if where else key), error


@HYPOTHESIS
@given(name=st.text(min_size=1, max_size=60).filter(lambda n: not (n.isascii() and n.replace("-", "").isalnum()
                                                                     and n == n.lower() and len(n) <= 48
                                                                     and n[0] != "-" and n[-1] != "-")))
@example(name="-")  # found by hypothesis in CI: SageMaker and Kubernetes names cannot start or end with a dash
@example(name="churn-")
def test_a_name_outside_lowercase_ascii_is_refused(roots: Settings, name: str) -> None:
    assert _refused({**VALID, "name": name}, roots).field == "name"


@HYPOTHESIS
@given(sizes=st.lists(st.integers(min_value=40, max_value=5000), min_size=4, max_size=6))
def test_a_grid_too_large_is_refused_by_counting(roots: Settings, sizes: list[int]) -> None:
    """At least 40**4 = 2.56 million trials, up to 1.5e22: expanding any of them would never finish."""
    params = {f"p{i}": list(range(n)) for i, n in enumerate(sizes)}
    error = _refused({**VALID, "models": [{"type": "random_forest", "params": params}]}, roots)
    assert error.field == "models" and "trials, more than 100,000" in error.message


def test_too_many_random_trials_is_refused(roots: Settings) -> None:
    spec = {**VALID, "search": {"strategy": "random", "n_trials": 10**9},
            "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.01, 1.0]}}}]}
    assert _refused(spec, roots).field == "search.n_trials"


@pytest.mark.parametrize("text", [
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n",
    "name: !!python/object/apply:os.system ['echo pwned']\n",
    "name: [unclosed\n",
    "- just\n- a list\n",
    "x: " + "y" * 1_000_001,
])
def test_hostile_yaml_is_refused_before_it_is_built(text: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_yaml_text(text)
    assert caught.value.field == "spec"


@pytest.mark.parametrize("where", ["/etc/passwd", "../../../etc/hostname", "{tmp}/secret.parquet",
                                   "{tmp}/data/../secret.parquet", "{tmp}/data/link.parquet", "~/.ssh/id_rsa"])
def test_a_dataset_outside_the_data_roots_is_refused(roots: Settings, tmp_path: Path, where: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "target": [0, 1, 0, 1]})
    frame.to_parquet(tmp_path / "secret.parquet")
    (tmp_path / "data" / "link.parquet").symlink_to(tmp_path / "secret.parquet")  # inside, pointing out
    spec = {**VALID, "dataset": {"path": where.format(tmp=tmp_path)}}
    error = _refused(spec, roots)
    assert error.field == "dataset.path" and "outside the allowed data roots" in error.message
    with pytest.raises(SpecError):  # refused by validation alone, before any data is read
        validate(spec, settings=roots)


@HYPOTHESIS
@given(content=st.binary(max_size=2048), suffix=st.sampled_from([".parquet", ".csv", ".txt", ""]))
def test_a_file_that_is_not_parquet_or_csv_is_refused(roots: Settings, content: bytes, suffix: str) -> None:
    path = Path(roots.allowed_data_roots[0]) / f"junk{suffix}"
    path.write_bytes(content)
    error = _refused({**VALID, "dataset": {"path": str(path)}}, roots)
    # Unreadable, or (bytes that happen to parse as CSV) a table without the `target` column.
    assert error.field in ("dataset.path", "target"), error


def test_a_good_spec_inside_the_roots_runs(roots: Settings) -> None:
    """The refusals above are not a spec that can never pass: the same spec with a file inside runs."""
    import pandas as pd
    from sklearn.datasets import load_iris

    path = Path(roots.allowed_data_roots[0]) / "iris.parquet"
    load_iris(as_frame=True).frame.to_parquet(path)
    context = prepare({**VALID, "dataset": {"path": str(path)}}, settings=roots, run_id="20261201T000000-0001")
    assert Path(context.data_path).is_file() and pd.read_parquet(context.data_path).shape[0] == 150


@pytest.mark.parametrize(("spec", "field"), [
    ({**VALID, "models": [{"type": "logistic_l1", "params": {"C": list(range(200))}}] * 600}, "models"),
    ({**VALID, "dataset": {"path": "/etc/passwd"}}, "dataset.path"),
    ({**VALID, "name": "résumé"}, "name"),
    ({**VALID, "surprise": True}, "surprise"),
    ({**VALID, "budget": {"timeout_minutes": 1e9}}, "budget.timeout_minutes: 1e+09 is above the deployment's limit"),
])
def test_the_cli_exits_2_naming_the_field_and_writes_nothing(tmp_path: Path, spec: dict[str, Any],
                                                             field: str) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "MLFLEET_HOME": str(tmp_path / "home"), "MLFLEET_DATA_ROOTS": str(tmp_path / "data")}
    result = subprocess.run([MLFLEET, "sweep", str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert field in (result.stderr + result.stdout)
    assert not (tmp_path / "home" / "experiments").exists()
