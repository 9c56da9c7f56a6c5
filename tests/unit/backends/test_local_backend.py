"""The local backend's training process: forked from a single-threaded caller, a new interpreter
otherwise, the same rows either way; its own deadline, its death with a caller killed the ways
Airflow kills a task (on_kill, SIGTERM, SIGKILL), an orphan a retry stops, and the OpenMP case
that makes forking unsafe.

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

root, data, start, before, timeout, slow = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6] == "slow"
on_term, workers = sys.argv[7], int(sys.argv[8])
if on_term == "on_kill":  # as Airflow's task runner: SIGTERM calls the operator's on_kill, and the task goes on
    from mlfleet.airflow.batch_operator import TrialBatchOperator
    operator = TrialBatchOperator(task_id="run_batch", sweep_ref={}, batch={})
    signal.signal(signal.SIGTERM, lambda *_: operator.on_kill())
else:  # as a process that ends on SIGTERM
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
messages = []
handler = logging.Handler()
handler.emit = lambda record: messages.append(record.getMessage())
logging.getLogger("mlfleet.backends.local").addHandler(handler)
logging.getLogger("mlfleet.backends.local").setLevel(logging.INFO)

frame = load_breast_cancer(as_frame=True).frame.iloc[:300]
frame.columns = [c.replace(" ", "_") for c in frame.columns]
frame.to_parquet(data, index=False)
features = [c for c in frame.columns if c != "target"][:8]
params = [{"n_estimators": 200000, "max_depth": 12}] if slow else [{"n_estimators": 5, "max_depth": d} for d in (2, 3)]
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
    rows = local.run_batch(root, trial_ids=[t["trial_id"] for t in trials], workers=workers, timeout_seconds=timeout, start=start)
    error = None
except RuntimeError as err:
    rows, error = None, str(err)
stop.set()
print(json.dumps({"rows": rows, "error": error, "messages": messages}), flush=True)
"""


def _argv(tmp_path: Path, name: str, *, start: str = "auto", before: str = "nothing", timeout: float = 120,
          slow: bool = False, on_term: str = "exit", workers: int = 1) -> list[str]:
    return [sys.executable, "-c", SCRIPT, str(tmp_path / name), str(tmp_path / f"{name}.parquet"), start, before,
            str(timeout), "slow" if slow else "fast", on_term, str(workers)]


def _env(tmp_path: Path) -> dict[str, str]:
    """The script's environment: its training set (in tmp_path) inside the allowed data roots."""
    return {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLEET_DATA_ROOTS": str(tmp_path)}


def _run(tmp_path: Path, name: str, *, start: str = "auto", before: str = "nothing", timeout: float = 120,
         slow: bool = False) -> dict[str, Any]:
    root = tmp_path / name
    proc = subprocess.run(
        _argv(tmp_path, name, start=start, before=before, timeout=timeout, slow=slow),
        capture_output=True, text=True, timeout=240, env=_env(tmp_path),
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


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _group(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (a training process and its fold workers)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return found


def _gone_within(proc: psutil.Process, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not (_gone(proc) and not _group(proc.pid)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("start", ["auto", "exec"])
def test_a_batch_over_its_timeout_is_killed_by_its_own_deadline_and_recorded(tmp_path: Path, start: str) -> None:
    result = _run(tmp_path, f"slow-{start}", start=start, timeout=3, slow=True)

    assert result["rows"] is None
    assert "timed out: exceeded budget.timeout_minutes" in result["error"]
    failure = (result["root"] / "output/failure").read_text().splitlines()[0]
    assert failure.startswith("timed out: the training process ran past budget.timeout_minutes"), failure
    pid = int((result["root"] / local.PID_FILE).read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("start", ["auto", "exec"])
def test_the_deadline_is_the_training_process_own(tmp_path: Path, start: str) -> None:
    """With nobody waiting (the caller stopped, never reaping it), the training process still ends at its deadline."""
    caller = subprocess.Popen(_argv(tmp_path, "alone", start=start, timeout=4, slow=True), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=_env(tmp_path))
    assert caller.stdout is not None
    started = _first_json(caller.stdout)
    trainer = _trainer(tmp_path / "alone")
    os.kill(started["pid"], signal.SIGSTOP)  # alive (no parent-death signal), but waiting for nothing
    try:
        assert _gone_within(trainer, 30), "the training process outlived its deadline"
    finally:
        os.kill(started["pid"], signal.SIGKILL)
        caller.wait(timeout=15)
        caller.stdout.close()


def _first_json(stream: Any) -> dict[str, Any]:
    """The script's first JSON line (an Airflow import may print its own lines first)."""
    for line in stream:
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError("the script ended before it started the batch")


def _started(caller: subprocess.Popen) -> dict[str, Any]:
    assert caller.stdout is not None and caller.stderr is not None
    try:
        return _first_json(caller.stdout)
    except AssertionError:
        raise AssertionError(caller.stderr.read()[-3000:]) from None


def _trainer(root: Path) -> psutil.Process:
    """The batch's training process, from its pid file (written as it starts; a new interpreter keeps its pid)."""
    deadline = time.monotonic() + 60
    while not (root / local.PID_FILE).is_file():
        assert time.monotonic() < deadline, "the training process never started"
        time.sleep(0.1)
    return psutil.Process(int((root / local.PID_FILE).read_text()))


# How Airflow stops a task: its supervisor sends SIGTERM, the task runner's handler calls the
# operator's on_kill ("on_kill"); a process that exits on SIGTERM ("sigterm"); and SIGKILL, where
# nothing in the task process runs ("sigkill").
@pytest.mark.parametrize(("start", "how"), [("auto", "on_kill"), ("auto", "sigterm"), ("auto", "sigkill"),
                                            ("exec", "on_kill"), ("exec", "sigkill")])
def test_a_killed_batch_takes_its_training_process_along(tmp_path: Path, start: str, how: str) -> None:
    root = tmp_path / "killed"
    caller = subprocess.Popen(
        _argv(tmp_path, "killed", start=start, timeout=600, slow=True, workers=2,
              on_term="on_kill" if how == "on_kill" else "exit"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path),
    )
    started = _started(caller)
    assert started["can_fork"] is True  # "exec" starts a new interpreter all the same
    trainer = _trainer(root)
    time.sleep(1)  # its fold workers start
    assert not _gone(trainer), (root / "output/train.log").read_text()[-3000:]
    os.kill(started["pid"], signal.SIGKILL if how == "sigkill" else signal.SIGTERM)

    assert _gone_within(trainer, 10), f"training process {trainer.pid} (or its group) outlived its killed batch"
    out, err = caller.communicate(timeout=30)
    if how == "on_kill":  # the task went on: its run_batch failed with the killed process's status
        assert caller.returncode == 0, err[-3000:]
        result = [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]
        assert result["rows"] is None and "failed: exit status -9" in result["error"], result
        assert any("stopped training process" in m for m in result["messages"]), result["messages"]
    else:
        assert caller.returncode == (256 - signal.SIGKILL if how == "sigkill" else 143)


def test_a_retry_stops_a_training_process_left_running(tmp_path: Path) -> None:
    """Where the training process could not die with its caller, a retry kills it (and its group) first."""
    root = tmp_path / "orphaned"
    (root / "output").mkdir(parents=True)
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "train", "--root", str(root)],
                              process_group=0)
    (root / local.PID_FILE).write_text(str(orphan.pid))
    try:
        assert local.stop_orphan(root) == orphan.pid
        orphan.wait(timeout=10)  # stop_orphan reaped it already (psutil waits for a child of this process)
        assert not psutil.pid_exists(orphan.pid)
    finally:
        orphan.kill()
    (root / local.PID_FILE).write_text(str(os.getpid()))  # a pid reused by a process that is not this batch's
    assert local.stop_orphan(root) is None
