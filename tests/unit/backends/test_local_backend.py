"""The local backend's training process: one way to start it, from any caller (one with threads,
one that has run an OpenMP fit); its own deadline, its death with a caller killed the ways Airflow
kills a task (on_kill, SIGTERM, SIGKILL) and with its fold workers, an orphan a retry stops.

Each case runs in a caller process of its own, as a task process of `mlfleet up` runs `run_batch`
(TrialBatchOperator -> mlfleet.sweep.run_batch -> local.run_batch, the one process start there
is): the script below stages a small batch, may start a thread or an OpenMP fit first, then calls
`run_batch` and prints what happened as JSON.
"""

from __future__ import annotations

import json
import os
import re
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

root, data, before, timeout, slow = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5] == "slow"
on_term, workers = sys.argv[6], int(sys.argv[7])
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
print(json.dumps({"threads": len(os.listdir("/proc/self/task")), "pid": os.getpid()}), flush=True)
try:
    rows = local.run_batch(root, trial_ids=[t["trial_id"] for t in trials], workers=workers, timeout_seconds=timeout)
    error = None
except RuntimeError as err:
    rows, error = None, str(err)
stop.set()
print(json.dumps({"rows": rows, "error": error, "messages": messages}), flush=True)
"""


def _argv(tmp_path: Path, name: str, *, before: str = "nothing", timeout: float = 600,
          slow: bool = False, on_term: str = "exit", workers: int = 1) -> list[str]:
    return [sys.executable, "-c", SCRIPT, str(tmp_path / name), str(tmp_path / f"{name}.parquet"), before,
            str(timeout), "slow" if slow else "fast", on_term, str(workers)]


def _env(tmp_path: Path) -> dict[str, str]:
    """The script's environment: its training set (in tmp_path) inside the allowed data roots."""
    return {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLEET_DATA_ROOTS": str(tmp_path)}


def _run(tmp_path: Path, name: str, *, before: str = "nothing", timeout: float = 600, slow: bool = False,
         workers: int = 1) -> dict[str, Any]:
    root = tmp_path / name
    proc = subprocess.run(
        _argv(tmp_path, name, before=before, timeout=timeout, slow=slow, workers=workers),
        capture_output=True, text=True, timeout=900, env=_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert "trial=" not in proc.stdout, "the training process wrote to its parent's stdout"
    return {**lines[0], **lines[1], "root": root}


def _scores(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    return {r["trial_id"]: r["fold_scores"] for r in rows}


def test_every_caller_starts_the_same_training_process_and_gets_the_same_rows(tmp_path: Path) -> None:
    # "openmp": a caller that has run an OpenMP fit has the runtime's threads, as an Airflow task
    # process or a pytest worker may; no caller forks, so none of them changes how training starts.
    plain = _run(tmp_path, "plain", workers=2)
    threaded = _run(tmp_path, "openmp", before="openmp", workers=2)

    assert threaded["threads"] > 1
    for run in (plain, threaded):
        assert run["error"] is None, run["error"]
        assert all(r["status"] == "success" for r in run["rows"]), run["rows"]
        assert any(re.fullmatch(r"batch \w+: training process \d+ started", m) for m in run["messages"]), run["messages"]
        # Its output went to the batch's log, not to its caller's stdout.
        log = (run["root"] / "output/train.log").read_text()
        assert "trial=logistic-l1-0 mean_score=" in log
    assert _scores(plain["rows"]) == _scores(threaded["rows"])


def test_the_training_process_is_the_container_entrypoint_with_its_lifetime_and_no_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `run_batch` hands subprocess.Popen: the SageMaker/pod command, its own group, the lifetime variables."""
    from mlfleet.training import entrypoint

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-trainers")
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "not-for-trainers")
    seen: dict[str, Any] = {}
    root = tmp_path / "batch"

    class Started:
        pid, returncode = 2**22 + 1, None  # above any pid the tests' kernel hands out: no signal reaches a process

        def __init__(self, command: list[str], **kwargs: Any) -> None:
            seen.update(command=command, **kwargs)
            (root / "model").mkdir(parents=True, exist_ok=True)
            (root / "model/results.json").write_text("[]")

        def wait(self, timeout: float | None = None) -> int:
            self.returncode = 0
            return 0

    monkeypatch.setattr(local.subprocess, "Popen", Started)
    assert local.run_batch(root, trial_ids=[], workers=3, timeout_seconds=90.5) == []

    assert seen["command"] == [sys.executable, "-m", "mlfleet.training.entrypoint", "train", "--root", str(root)]
    assert seen["process_group"] == 0 and "preexec_fn" not in seen
    env = seen["env"]
    assert env["MLFLEET_WORKERS"] == "3" and env["PYTHONUNBUFFERED"] == "1"
    assert env[entrypoint.PARENT_PID_ENV] == str(os.getpid())
    assert env[entrypoint.DEADLINE_ENV] == "91"  # whole seconds, rounded up
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AIRFLOW__CORE__FERNET_KEY" not in env


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


def test_a_batch_over_its_timeout_is_killed_by_its_own_deadline_and_recorded(tmp_path: Path) -> None:
    result = _run(tmp_path, "slow", timeout=3, slow=True)

    assert result["rows"] is None
    assert "timed out: exceeded budget.timeout_minutes" in result["error"]
    failure = (result["root"] / "output/failure").read_text().splitlines()[0]
    assert failure.startswith("timed out: the training process ran past budget.timeout_minutes"), failure
    pid = int((result["root"] / local.PID_FILE).read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_the_deadline_is_the_training_process_own(tmp_path: Path) -> None:
    """With nobody waiting (the caller stopped, never reaping it), the training process still ends at its deadline."""
    caller = subprocess.Popen(_argv(tmp_path, "alone", timeout=4, slow=True), stdout=subprocess.PIPE,
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


def test_fold_workers_die_with_their_training_process(tmp_path: Path) -> None:
    """A training process that dies alone (its deadline, its parent-death signal), with nobody left to
    kill its group: its fold workers die with it rather than fit on beside a retry."""
    caller = subprocess.Popen(_argv(tmp_path, "workers", slow=True, workers=2), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=_env(tmp_path))
    assert caller.stdout is not None
    started = _first_json(caller.stdout)
    trainer = _trainer(tmp_path / "workers")
    try:
        workers = _fitting_workers(trainer, 2)
        os.kill(started["pid"], signal.SIGSTOP)  # the caller would kill the group once its wait returns
        trainer.send_signal(signal.SIGKILL)
        assert _gone_within(trainer, 10), f"fold workers {[w.pid for w in workers]} outlived their training process"
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


def _fitting_workers(trainer: psutil.Process, count: int) -> list[psutil.Process]:
    """`count` of the training process's pool workers, once each is fitting a forest (scikit-learn's tree
    code is loaded in it: a worker loads it after it has arranged to die with the training process)."""
    deadline = time.monotonic() + 300  # new interpreters import scikit-learn first: slow on a busy machine

    def fitting(proc: psutil.Process) -> bool:
        try:
            return any("sklearn/tree/_tree" in m.path for m in proc.memory_maps())
        except psutil.Error:
            return False

    while len(workers := [p for p in trainer.children() if fitting(p)]) < count:
        assert time.monotonic() < deadline, f"{len(workers)} of {count} pool workers are fitting"
        time.sleep(0.2)
    return workers


def _trainer(root: Path) -> psutil.Process:
    """The batch's training process, from its pid file (written as it starts)."""
    deadline = time.monotonic() + 300
    while not (root / local.PID_FILE).is_file():
        assert time.monotonic() < deadline, "the training process never started"
        time.sleep(0.1)
    return psutil.Process(int((root / local.PID_FILE).read_text()))


# How Airflow stops a task: its supervisor sends SIGTERM, the task runner's handler calls the
# operator's on_kill ("on_kill"); a process that exits on SIGTERM ("sigterm"); and SIGKILL, where
# nothing in the task process runs ("sigkill").
@pytest.mark.parametrize("how", ["on_kill", "sigterm", "sigkill"])
def test_a_killed_batch_takes_its_training_process_along(tmp_path: Path, how: str) -> None:
    root = tmp_path / "killed"
    caller = subprocess.Popen(
        _argv(tmp_path, "killed", timeout=600, slow=True, workers=2,
              on_term="on_kill" if how == "on_kill" else "exit"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path),
    )
    started = _started(caller)
    trainer = _trainer(root)
    assert trainer.cmdline()[1:] == ["-m", "mlfleet.training.entrypoint", "train", "--root", str(root)]
    _fitting_workers(trainer, 2)
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
        assert caller.returncode == (-signal.SIGKILL if how == "sigkill" else 143)


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
