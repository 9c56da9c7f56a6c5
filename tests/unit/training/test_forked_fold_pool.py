"""The training entrypoint's forked fold pool: the same rows as joblib's pool, a dead worker is an
error and not a hang, and its workers die with the training process.

Each case runs where a forked training process runs: in a fork of an interpreter that imported
the libraries (one thread; a pytest worker has threads, and there the entrypoint uses joblib's
pool, as every other test of the entrypoint shows).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

SCRIPT = r"""
import json, os, shutil, signal, sys, time
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer

from mlfleet.backends import local
from mlfleet.training import cv, entrypoint

if os.fork():  # as the executor forks its workers and they fork the task process
    _, status = os.wait()
    sys.exit(os.waitstatus_to_exitcode(status))

case, tmp = sys.argv[1], Path(sys.argv[2])
frame = load_breast_cancer(as_frame=True).frame.iloc[:240]
frame.columns = [c.replace(" ", "_") for c in frame.columns]
frame.to_parquet(tmp / "train.parquet", index=False)
features = [c for c in frame.columns if c != "target"][:8]
models = {"xgboost": {"n_estimators": 5, "max_depth": 2}, "lightgbm": {"n_estimators": 5, "num_leaves": 7},
          "random_forest": {"n_estimators": 5, "max_depth": 3}, "logistic_l1": {"C": 1.0}}
trials = [{"trial_id": f"{m}-0", "model": m, "params": p, "model_index": i, "optuna_number": None}
          for i, (m, p) in enumerate(models.items())]
job = {"task": "classification", "target": "target", "features": features, "metric": "roc_auc",
       "cv": {"folds": 3, "seed": 0}, "trials": trials}
root = tmp / "batch"
local.stage_batch(root, job=job, data_path=tmp / "train.parquet")

def report(**values):
    print("RESULT " + json.dumps(values), flush=True)

if case == "same-rows":
    threads_before = len(os.listdir("/proc/self/task"))
    shutil.copytree(root, tmp / "again", symlinks=True)
    forked = entrypoint.run(root, workers=2)
    # This process has read Parquet now (Arrow's threads): the second run may not fork, so joblib's pool runs it.
    joblib_rows = entrypoint.run(tmp / "again", workers=2)
    report(threads_before=threads_before, forked=forked, joblib=joblib_rows)
elif case == "dead-worker":
    fit = cv._fit_fold
    def fit_or_die(trial, fold, *args):
        if trial["trial_id"] == "random_forest-0":
            os.kill(os.getpid(), signal.SIGKILL)
        return fit(trial, fold, *args)
    cv._fit_fold = fit_or_die  # the workers are forked after this, so they run it
    started = time.monotonic()
    try:
        entrypoint.run(root, workers=2)
        report(error=None)
    except Exception as err:
        report(error=f"{type(err).__name__}: {err}", seconds=time.monotonic() - started)
elif case == "no-data":
    for f in (root / "input/data/train").iterdir():
        f.unlink()
    try:
        entrypoint.run(root, workers=2)
        report(error=None)
    except Exception as err:
        report(error=f"{type(err).__name__}: {err}")
elif case == "orphaned":
    load = lambda: entrypoint.load_arrays(root / "input/data/train", features=features, target="target")
    pool = cv.ForkedFoldPool(2, load=load, config=cv.CVConfig("classification", "roc_auc", 3, 0))
    report(workers=sorted(pool.executor._processes))
    time.sleep(120)
"""


def _start(case: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, case, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _run(case: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    proc = _start(case, tmp_path)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ")), out


def _scores(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    return {r["trial_id"]: r["fold_scores"] for r in rows}


def test_forked_workers_give_the_rows_joblibs_pool_gives(tmp_path: Path) -> None:
    result, out = _run("same-rows", tmp_path)

    assert result["threads_before"] == 1
    assert out.count("fold pool: 2 workers forked from this process") == 1  # the first run only
    assert all(r["status"] == "success" for r in result["forked"]), result["forked"]
    # XGBoost and LightGBM (OpenMP) fit in workers forked from a process that never ran OpenMP.
    assert _scores(result["forked"]) == _scores(result["joblib"])
    assert len(result["forked"]) == 4


def test_a_worker_that_dies_fails_the_batch_instead_of_hanging_it(tmp_path: Path) -> None:
    result, _ = _run("dead-worker", tmp_path)

    assert result["error"] is not None and "BrokenProcessPool" in result["error"], result
    assert result["seconds"] < 60


def test_the_workers_die_with_the_training_process(tmp_path: Path) -> None:
    proc = _start("orphaned", tmp_path)
    assert proc.stdout is not None
    line = next(x for x in proc.stdout if x.startswith("RESULT "))
    workers = [psutil.Process(pid) for pid in json.loads(line.removeprefix("RESULT "))["workers"]]
    assert len(workers) == 2 and all(w.is_running() for w in workers)

    training = next(p for p in psutil.Process(proc.pid).children() if p.pid not in {w.pid for w in workers})
    training.send_signal(signal.SIGKILL)  # as a batch's timeout or `stop_orphan` kills it
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()

    deadline = time.monotonic() + 15
    while any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):
        assert time.monotonic() < deadline, "a worker outlived the training process"
        time.sleep(0.1)


def test_a_training_set_the_workers_cannot_load_fails_with_its_own_error(tmp_path: Path) -> None:
    result, _ = _run("no-data", tmp_path)

    assert result["error"].startswith("FileNotFoundError: input channel"), result
    assert "holds no .parquet or .csv file" in result["error"]
