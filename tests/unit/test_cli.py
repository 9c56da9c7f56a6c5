"""The `mlfleet` command: a bad spec is one line and exit 2; `sweep --json` is the leaderboard alone on stdout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlfleet.cli import app

ROOT = Path(__file__).resolve().parents[2]
MLFLEET = str(Path(sys.executable).parent / "mlfleet")
TRIAL_KEYS = {"trial_id", "model", "params", "fold_scores", "mean_score", "std_score", "fit_seconds", "status", "error"}

BAD_SPECS = {
    "name: Churn_Model\ntask: classification\ntarget: target\nmetric: accuracy\ndataset: {builtin: iris}\n"
    "models: [{type: logistic_l1, params: {C: [1.0]}}]\n": "name",
    "name: bad\ntask: classification\ntarget: target\nmetric: accuracy\ndataset: {builtin: iris}\n"
    "models: [{type: catboost}]\n": "models[0].type",
    "name: bad\ntask: classification\ntarget: target\nmetric: accuracy\ndataset: {builtin: iris}\n"
    "models: [{type: logistic_l1, params: {C: []}}]\n": "models[0].params.C",
    "name: bad\ntask: classification\ntarget: target\nmetric: accuracy\ndataset: {builtin: iris}\n"
    "models: [{type: logistic_l1, params: {foo: [1]}}]\n": "models[0].params.foo",
    "name: bad\ntask: classification\ntarget: target\nmetric: acc\ndataset: {builtin: iris}\n"
    "models: [{type: logistic_l1, params: {C: [1.0]}}]\n": "metric",
    "name: bad\ntask: classification\ntarget: churned\nmetric: accuracy\ndataset: {builtin: iris}\n"
    "models: [{type: logistic_l1, params: {C: [1.0]}}]\n": "target",
    "name: bad\ntask: classification\nmetric: accuracy\ndataset: {builtin: iris}\n"
    "models: [{type: logistic_l1, params: {C: [1.0]}}]\n": "target",
    "name: bad\ntask: classification\ntarget: target\nmetric: accuracy\ndataset: {path: /nonexistent/train.parquet}\n"
    "models: [{type: logistic_l1, params: {C: [1.0]}}]\n": "dataset.path",
    "name: bad\ntask: classification\ntarget: target\nmetric: accuracy\ndataset: {builtin: iris}\n"
    "search: {strategy: random}\nmodels: [{type: logistic_l1, params: {C: {float: [1, 0.1]}}}]\n": "search.n_trials",
    "name: bad\ntask: classification\ntarget: target\nmetric: accuracy\ndataset: {builtin: iris}\n"
    "search: {strategy: random, n_trials: 2}\nmodels: [{type: logistic_l1, params: {C: {float: [1, 0.1]}}}]\n":
    "models[0].params.C.float",
}


@pytest.mark.parametrize(("text", "field"), list(BAD_SPECS.items()), ids=list(range(len(BAD_SPECS))))
def test_bad_spec_is_one_line_and_exit_2(settings, tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["sweep", str(path), "--json"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {field}: ")
    assert "Traceback" not in result.output
    assert not settings.experiments_dir.exists()


def test_python_tag_is_refused_and_not_run(settings, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: evil\ntask: !!python/object/apply:os.system ['touch {marker}']\n")
    result = CliRunner().invoke(app, ["sweep", str(path)])
    assert result.exit_code == 2
    assert not marker.exists()
    assert re.fullmatch(rf"error: {re.escape(str(path))}: YAML tag not allowed .*python/object/apply:os\.system.*\n",
                        result.stderr)
    assert not settings.experiments_dir.exists()


def test_missing_spec_file(settings, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: spec: ") and "does not exist" in result.stderr
    assert "Traceback" not in result.output


def test_no_arguments_shows_help() -> None:
    result = CliRunner().invoke(app, [])
    assert result.exit_code in (0, 2)
    for command in ("sweep", "up", "down", "demo"):
        assert command in result.output


def test_bad_spec_through_the_installed_command(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(next(iter(BAD_SPECS)))
    home = tmp_path / "home"
    proc = subprocess.run([MLFLEET, "sweep", str(path), "--json"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MLFLEET_HOME": str(home)})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "error: name: 'Churn_Model' must match [a-z0-9-]+ with a letter or digit at both ends (lower-case letters, digits, dashes)\n"
    assert not (home / "experiments").exists()


def test_an_error_only_the_data_shows_is_one_line_through_the_installed_command(tmp_path: Path) -> None:
    # The target is checked against the loaded data, in `prepare`, which `mlfleet sweep` runs in its own process.
    path = tmp_path / "bad.yaml"
    path.write_text(next(text for text, field in BAD_SPECS.items() if "target: churned" in text))
    home = tmp_path / "home"
    proc = subprocess.run([MLFLEET, "sweep", str(path), "--json"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MLFLEET_HOME": str(home)})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: target: "), proc.stderr[-2000:]
    assert not (home / "experiments").exists()


def test_sweep_json_is_the_leaderboard_alone_on_stdout(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # one worker per batch: the real run skips starting a process pool on this small machine
    env = {**os.environ, "MLFLEET_HOME": str(home), "MLFLEET_LOCAL_WORKERS": "1"}
    proc = subprocess.run([MLFLEET, "sweep", str(ROOT / "specs/iris-quick.yaml"), "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = json.loads(proc.stdout)  # stdout is the JSON and nothing else

    assert board["experiment"] == "iris-quick"
    assert board["metric"] == "accuracy"
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{4}", board["run_id"])
    run_dir = home / "experiments" / "iris-quick" / board["run_id"]
    assert board["results_uri"] == run_dir.resolve().as_uri()
    assert run_dir.is_dir()

    trials = board["trials"]
    assert len(trials) == 3 + 2
    for row in trials:
        assert TRIAL_KEYS <= set(row)
        assert row["status"] == "success" and row["error"] is None
        assert len(row["fold_scores"]) == 3
        assert row["mean_score"] == pytest.approx(sum(row["fold_scores"]) / 3)
        assert re.fullmatch(rf"{row['model'].replace('_', '-')}-[0-9a-f]{{8}}", row["trial_id"])
    assert {r["model"] for r in trials} == {"logistic_l1", "random_forest"}
    means = [r["mean_score"] for r in trials]
    assert means == sorted(means, reverse=True)
    best = board["best"]
    assert {"trial_id", "model", "params", "mean_score"} <= set(best)
    assert best["trial_id"] == trials[0]["trial_id"]
    assert best["mean_score"] == trials[0]["mean_score"] > 0.9
    assert best["params"] == trials[0]["params"]

    # the leaderboard on disk says the same
    on_disk = json.loads((run_dir / "leaderboard.json").read_text())
    assert [r["trial_id"] for r in on_disk["trials"]] == [r["trial_id"] for r in trials]

    # progress goes to stderr
    assert re.search(r"^5/5 trials done, best accuracy 0\.\d+$", proc.stderr, re.M), proc.stderr[-2000:]
    assert "trials done" not in proc.stdout
    assert "Traceback" not in proc.stderr
