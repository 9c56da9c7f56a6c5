"""The training entrypoint's container contract: SageMaker's directory layout, stdout metrics,
checkpoints that let a restarted job skip finished trials, and the failure file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold, cross_validate

from mlfleet.training import entrypoint
from mlfleet.training.entrypoint import (
    METRIC_DEFINITIONS,
    PARENT_PID_ENV,
    lifetime_env,
    main,
    read_job,
    run,
    stage_job,
    write_json_atomic,
)
from mlfleet.training.zoo import build_estimator
from mlfleet.trials import trial_id

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FOLDS = 3
SEED = 0


def trial(model: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"trial_id": trial_id(model, params), "model": model, "params": params, "model_index": 0, "optuna_number": None}


TRIALS = [
    trial("logistic_l1", {"C": 1.0}),
    trial("random_forest", {"n_estimators": 10, "max_depth": 3}),
    trial("random_forest", {"n_estimators": 10, "max_depth": -5}),  # crashes in fit
]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True).frame
    data.columns = [c.replace(" ", "_") for c in data.columns]
    return data.iloc[:200].reset_index(drop=True)


def features(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "target"][:10]


def make_root(root: Path, frame: pd.DataFrame, trials: list[dict[str, Any]]) -> Path:
    job = {"task": "classification", "target": "target", "features": features(frame), "metric": "roc_auc",
           "cv": {"folds": FOLDS, "seed": SEED}, "trials": trials}
    stage_job(root, job)
    channel = root / "input/data/train"
    channel.mkdir(parents=True)
    frame.to_parquet(channel / "train.parquet", index=False)
    return root


@pytest.fixture(autouse=True)
def two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLEET_WORKERS", "2")


def metrics(stdout: str) -> dict[str, list[float]]:
    """What SageMaker's MetricDefinitions would scrape from the job's log."""
    return {d["Name"]: [float(v) for v in re.findall(d["Regex"], stdout)] for d in METRIC_DEFINITIONS}


def test_train_writes_results_and_prints_metrics(tmp_path: Path, frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path / "ml", frame, TRIALS)
    assert main(["train", "--root", str(root)]) == 0
    stdout = capsys.readouterr().out

    rows = json.loads((root / "model/results.json").read_text())
    assert [r["trial_id"] for r in rows] == [t["trial_id"] for t in TRIALS]
    ok, forest, crashed = rows
    assert ok["status"] == forest["status"] == "success"
    assert crashed["status"] == "failed" and "max_depth" in crashed["error"] and crashed["fold_scores"] is None

    # the scores are scikit-learn's
    X, y = frame[features(frame)].to_numpy(dtype="float64"), frame["target"].to_numpy()
    cv = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    for row in (ok, forest):
        estimator = build_estimator(row["model"], row["params"], task="classification", seed=SEED, n_classes=2)
        expected = cross_validate(estimator, X, y, cv=cv, scoring="roc_auc")["test_score"]
        assert_allclose(row["fold_scores"], expected, rtol=1e-12)

    # stdout carries exactly what the MetricDefinitions read: 3 folds x 2 good trials, 2 means
    scraped = metrics(stdout)
    assert len(scraped["fold_score"]) == 2 * FOLDS
    assert len(scraped["mean_score"]) == 2
    assert sorted(scraped["mean_score"]) == pytest.approx(sorted([ok["mean_score"], forest["mean_score"]]), rel=1e-9)
    assert sorted(scraped["fold_score"]) == pytest.approx(sorted(ok["fold_scores"] + forest["fold_scores"]), rel=1e-9)
    for row in (ok, forest):
        for k, score in enumerate(row["fold_scores"]):
            line = re.search(rf"^trial={row['trial_id']} fold={k} score=(\S+)$", stdout, re.M)
            assert line and float(line[1]) == pytest.approx(score, rel=1e-9)
    assert re.search(rf"^trial={crashed['trial_id']} status=failed error=.*max_depth", stdout, re.M)

    # one checkpoint per trial, each the trial's row
    checkpoints = sorted(p.name for p in (root / "checkpoints").iterdir())
    assert checkpoints == sorted(f"{t['trial_id']}.json" for t in TRIALS)
    assert json.loads((root / f"checkpoints/{ok['trial_id']}.json").read_text()) == ok
    assert not (root / "output/failure").exists()


def test_restart_skips_checkpointed_trials(tmp_path: Path, frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path / "ml", frame, TRIALS[:2])
    assert main(["train", "--root", str(root)]) == 0
    first = json.loads((root / "model/results.json").read_text())
    capsys.readouterr()
    stamps = {p.name: p.stat().st_mtime_ns for p in (root / "checkpoints").iterdir()}

    # a restarted job: results.json gone, checkpoints kept, one new trial added to the batch
    (root / "model/results.json").unlink()
    added = trial("logistic_l1", {"C": 0.1})
    job = read_job(root)
    job["trials"].append(added)
    stage_job(root, job)

    assert main(["train", "--root", str(root)]) == 0
    stdout = capsys.readouterr().out
    rows = json.loads((root / "model/results.json").read_text())
    assert rows[:2] == first
    assert rows[2]["trial_id"] == added["trial_id"] and rows[2]["status"] == "success"
    # only the new trial was fitted: its metrics alone were printed, the old checkpoints untouched
    assert set(re.findall(r"^trial=(\S+) ", stdout, re.M)) == {added["trial_id"]}
    assert len(metrics(stdout)["fold_score"]) == FOLDS
    assert {p.name: p.stat().st_mtime_ns for p in (root / "checkpoints").iterdir() if p.name in stamps} == stamps


def test_rerun_with_everything_checkpointed_fits_nothing(tmp_path: Path, frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path / "ml", frame, TRIALS[:1])
    assert main(["train", "--root", str(root)]) == 0
    first = (root / "model/results.json").read_text()
    capsys.readouterr()
    assert main(["train", "--root", str(root)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads((root / "model/results.json").read_text()) == json.loads(first)


def test_csv_channel(tmp_path: Path, frame: pd.DataFrame) -> None:
    root = make_root(tmp_path / "ml", frame, TRIALS[:1])
    channel = root / "input/data/train"
    (channel / "train.parquet").unlink()
    frame.iloc[:100].to_csv(channel / "part-0.csv", index=False)
    frame.iloc[100:].to_csv(channel / "part-1.csv", index=False)
    parquet_root = make_root(tmp_path / "ml2", frame, TRIALS[:1])
    def scores(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in ("fit_seconds", "fold_seconds")} for r in rows]

    from_csv = scores(run(root, workers=2))
    assert from_csv == scores(run(parquet_root, workers=2))
    assert from_csv[0]["status"] == "success"


def test_empty_channel_fails_with_a_failure_file(tmp_path: Path, frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path / "ml", frame, TRIALS[:1])
    (root / "input/data/train/train.parquet").unlink()
    assert main(["train", "--root", str(root)]) == 1
    failure = (root / "output/failure").read_text()
    first_line = failure.splitlines()[0]
    assert first_line.startswith("FileNotFoundError: ")
    assert "input/data/train" in first_line and "no .parquet or .csv file" in first_line
    assert first_line in capsys.readouterr().err
    assert not (root / "model/results.json").exists()


def test_missing_feature_column_fails_naming_it(tmp_path: Path, frame: pd.DataFrame) -> None:
    root = make_root(tmp_path / "ml", frame.drop(columns=["mean_radius"]), TRIALS[:1])
    job = read_job(root)
    job["features"] = ["mean_radius", *job["features"]]
    stage_job(root, job)
    assert main(["train", "--root", str(root)]) == 1
    assert "mean_radius" in (root / "output/failure").read_text().splitlines()[0]


def test_missing_hyperparameters_fail(tmp_path: Path) -> None:
    root = tmp_path / "ml"
    root.mkdir()
    assert main(["train", "--root", str(root)]) == 1
    assert "hyperparameters.json" in (root / "output/failure").read_text()


def test_write_json_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "a/b/c.json"
    write_json_atomic(path, {"x": 1})
    write_json_atomic(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert [p.name for p in path.parent.iterdir()] == ["c.json"]


def _env() -> dict[str, str]:
    # One worker: the subprocess runs folds in-process and needs no joblib pool.
    return {**os.environ, "MLFLEET_WORKERS": "1", "PYTHONUNBUFFERED": "1"}


def test_module_entrypoint_in_a_subprocess(tmp_path: Path, frame: pd.DataFrame) -> None:
    root = make_root(tmp_path / "ml", frame, TRIALS)
    proc = subprocess.run([sys.executable, "-m", "mlfleet.training.entrypoint", "train", "--root", str(root)],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    scraped = metrics(proc.stdout)
    assert len(scraped["fold_score"]) == 2 * FOLDS and len(scraped["mean_score"]) == 2
    rows = json.loads((root / "model/results.json").read_text())
    assert [r["status"] for r in rows] == ["success", "success", "failed"]
    assert sorted(scraped["mean_score"]) == pytest.approx(sorted(r["mean_score"] for r in rows[:2]), rel=1e-9)


def test_entrypoint_never_imports_airflow(tmp_path: Path, frame: pd.DataFrame) -> None:
    root = make_root(tmp_path / "ml", frame, TRIALS[:1])
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "import mlfleet.training.entrypoint as ep\n"
        f"rows = ep.run(Path({str(root)!r}), workers=1)\n"
        "print('ROWS', len(rows), rows[0]['status'])\n"
        "print('AIRFLOW', 'airflow' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ROWS 1 success" in proc.stdout
    assert "AIRFLOW False" in proc.stdout
    assert np.isfinite(json.loads((root / "model/results.json").read_text())[0]["mean_score"])


# --- the lifetime a local batch's process gets (mlfleet.backends.local sets these variables) ------


def _train_in_a_subprocess(root: Path, **lifetime: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlfleet.training.entrypoint", "train", "--root", str(root)],
                          capture_output=True, text=True, env={**_env(), **lifetime}, timeout=120)


def test_a_trainer_whose_parent_is_already_gone_does_no_work(tmp_path: Path, frame: pd.DataFrame) -> None:
    root = make_root(tmp_path / "ml", frame, TRIALS[:1])
    proc = _train_in_a_subprocess(root, **{PARENT_PID_ENV: "1"})  # never its parent: this test process is
    assert proc.returncode == 1
    assert not (root / "checkpoints").exists() and not (root / "output/failure").exists()


def test_the_deadline_ends_the_trainer_with_sigalrm(tmp_path: Path, frame: pd.DataFrame) -> None:
    root = make_root(tmp_path / "ml", frame, [trial("random_forest", {"n_estimators": 200000, "max_depth": 12})])
    proc = _train_in_a_subprocess(root, **lifetime_env(parent_pid=os.getpid(), deadline_seconds=2))
    assert proc.returncode == -signal.SIGALRM, proc.stderr[-3000:]
    assert not (root / "model/results.json").exists()


def test_without_the_variables_nothing_is_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SageMaker job or a pod sets neither: no alarm, no parent-death signal."""
    armed: list[str] = []
    monkeypatch.setattr(signal, "signal", lambda signum, handler: armed.append(f"{signal.Signals(signum).name} {handler}"))
    monkeypatch.setattr(signal, "alarm", lambda seconds: armed.append(f"alarm {seconds}"))
    monkeypatch.setattr(entrypoint, "die_with_parent", lambda: armed.append("die with parent"))
    entrypoint.arm_lifetime({})
    assert armed == []
    entrypoint.arm_lifetime(lifetime_env(parent_pid=os.getppid(), deadline_seconds=30))
    assert armed == ["die with parent", f"SIGALRM {signal.SIG_DFL}", "alarm 30"]
