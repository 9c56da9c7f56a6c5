"""The local backend's training process: forked from a single-threaded caller, a new interpreter
otherwise, the same rows either way; the timeout, an orphan left by a killed caller, and the
OpenMP case that makes forking unsafe.

Each case runs where a task process of `mlfleet up` runs: in a fork of an interpreter that has
imported the libraries (a pytest-xdist worker has threads of its own, and a fresh interpreter's
numpy starts OpenBLAS threads, so neither forks). The script below stages a small batch, may start
a thread or an OpenMP fit first, then calls `run_batch` and prints what happened as JSON.
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
import pytest

from mlfleet.backends import local

SCRIPT = r"""
import json, logging, os, signal, sys, threading
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer

from mlfleet.backends import local

if os.fork():  # as the executor forks its workers and they fork the task process
    _, status = os.wait()
    sys.exit(os.waitstatus_to_exitcode(status))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # as an Airflow task process ends on SIGTERM

root, data, start, before, timeout, slow = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6] == "slow"
messages = []
handler = logging.Handler()
handler.emit = lambda record: messages.append(record.getMessage())
logging.getLogger("mlfleet.backends.local").addHandler(handler)
logging.getLogger("mlfleet.backends.local").setLevel(logging.INFO)

frame = load_breast_cancer(as_frame=True).frame.iloc[:300]
frame.columns = [c.replace(" ", "_") for c in frame.columns]
frame.to_parquet(data, index=False)
features = [c for c in frame.columns if c != "target"][:8]
params = [{"n_estimators": 4000, "max_depth": 12}] if slow else [{"n_estimators": 5, "max_depth": d} for d in (2, 3)]
trials = [{"trial_id": f"random-forest-{i}", "model": "random_forest", "params": p, "model_index": 0, "optuna_number": None}
          for i, p in enumerate(params)]
trials.append({"trial_id": "logistic-l1-0", "model": "logistic_l1", "params": {"C": 1.0}, "model_index": 1, "optuna_number": None})
job = {"task": "classification", "target": "target", "features": features, "metric": "roc_auc",
       "cv": {"folds": 3, "seed": 0}, "trials": trials}
local.stage_batch(root, job=job, data_path=data)

stop = threading.Event()
if before == "thread":
    threading.Thread(target=stop.wait, daemon=True).start()
elif before == "openmp":  # an OpenMP fit leaves the runtime's worker threads behind
    from sklearn.ensemble import HistGradientBoostingClassifier
    HistGradientBoostingClassifier(max_iter=5).fit(frame[features], frame["target"])
print(json.dumps({"can_fork": local.can_fork(), "pid": os.getpid()}), flush=True)
try:
    rows = local.run_batch(root, trial_ids=[t["trial_id"] for t in trials], workers=1, timeout_seconds=timeout, start=start)
    error = None
except RuntimeError as err:
    rows, error = None, str(err)
stop.set()
print(json.dumps({"rows": rows, "error": error, "messages": messages}), flush=True)
"""


def _run(tmp_path: Path, name: str, *, start: str = "auto", before: str = "nothing", timeout: float = 120,
         slow: bool = False) -> dict[str, Any]:
    root = tmp_path / name
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), str(tmp_path / f"{name}.parquet"), start, before, str(timeout),
         "slow" if slow else "fast"],
        capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert "trial=" not in proc.stdout, "the training process wrote to its parent's stdout"
    return {**lines[0], **lines[1], "root": root}


def _scores(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    return {r["trial_id"]: r["fold_scores"] for r in rows}


def test_a_single_threaded_caller_forks_and_gets_what_a_new_interpreter_gets(tmp_path: Path) -> None:
    forked = _run(tmp_path, "forked")
    started = _run(tmp_path, "exec", start="exec")

    assert forked["can_fork"] is True
    assert any("forked from this one" in m for m in forked["messages"]), forked["messages"]
    assert any("a new interpreter" in m for m in started["messages"]), started["messages"]
    assert forked["error"] is None and started["error"] is None
    assert _scores(forked["rows"]) == _scores(started["rows"])
    assert all(r["status"] == "success" for r in forked["rows"])
    # The child's output went to the batch's log, as the interpreter's does.
    for run in (forked, started):
        log = (run["root"] / "output/train.log").read_text()
        assert "trial=logistic-l1-0 mean_score=" in log


@pytest.mark.parametrize("before", ["thread", "openmp"])
def test_a_caller_with_other_threads_starts_a_new_interpreter(tmp_path: Path, before: str) -> None:
    # "openmp": a child forked after an OpenMP fit hangs in its first OpenMP fit (measured with
    # XGBoost, HistGradientBoosting and LightGBM), so a fork here could never finish the batch.
    # Its one worker (workers=1) fits in the training process itself, where the hang would be.
    result = _run(tmp_path, before, before=before)

    assert result["can_fork"] is False
    assert any("a new interpreter" in m for m in result["messages"]), result["messages"]
    assert result["error"] is None and len(result["rows"]) == 3


@pytest.mark.parametrize("start", ["auto", "exec"])
def test_a_batch_over_its_timeout_is_killed_and_named(tmp_path: Path, start: str) -> None:
    result = _run(tmp_path, f"slow-{start}", start=start, timeout=3, slow=True)

    assert result["rows"] is None
    assert "exceeded budget.timeout_minutes" in result["error"]
    pid = int((result["root"] / local.PID_FILE).read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_forked_training_process_orphaned_by_its_killed_caller_is_stopped(tmp_path: Path, sig: int) -> None:
    root = tmp_path / "orphaned"
    caller = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(root), str(tmp_path / "orphaned.parquet"), "auto", "nothing", "600", "slow"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert caller.stdout is not None
    started = json.loads(caller.stdout.readline())
    assert started["can_fork"] is True
    deadline = time.monotonic() + 60
    while not (root / local.PID_FILE).is_file():
        assert time.monotonic() < deadline, "the training process never started"
        time.sleep(0.1)
    trainer = psutil.Process(int((root / local.PID_FILE).read_text()))
    os.kill(started["pid"], sig)  # the "task process", killed (or terminated, as Airflow does) mid-batch
    # It exits at once: nothing joins the training process on the way out.
    # (The script passes the task's status on: sys.exit(-9) leaves the interpreter with 247.)
    assert caller.wait(timeout=15) == (256 - signal.SIGKILL if sig == signal.SIGKILL else 143)
    caller.stdout.close()
    assert trainer.is_running() and str(root) in " ".join(trainer.cmdline())

    assert local.stop_orphan(root) == trainer.pid
    assert not trainer.is_running() or trainer.status() == psutil.STATUS_ZOMBIE
