"""Work forked beside a process: its value or its error comes back, it dies with its parent, it
never shares the parent's MLflow connections, and a process that may not fork runs it itself.
A large sweep's MLflow trial runs are logged by two processes, each run once.

Each case runs in a new interpreter that has imported nothing with threads of its own: a pytest
(xdist) worker has threads, and forking from it is what `can_fork` refuses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

SCRIPT = r"""
import json, logging, os, sys, threading, time
from mlfleet import forking

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
case = sys.argv[1]

def square(x):
    print("squaring", x)
    logging.getLogger("child").warning("warned from the child")
    return {"value": x * x, "pid": os.getpid()}

def fail(x):
    raise ValueError(f"bad input {x}")

def vanish(x):
    os._exit(3)

def report(value=None, error=None):
    print("RESULT " + json.dumps({"parent": os.getpid(), "value": value, "error": error}), flush=True)

if case == "threaded":
    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
    result = forking.call_beside(square, x=4)
    report(result())
elif case == "orphan":
    call = forking.ForkedCall(time.sleep, secs=60)
    print("CHILD " + str(call.pid), flush=True)
    time.sleep(60)
elif case == "mlflow":
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlfleet.config import Settings
    from mlfleet.results import tracking

    if os.fork():  # as an Airflow task process is forked: MLflow imported (numpy's threads stay behind)
        _, status = os.wait()
        sys.exit(os.waitstatus_to_exitcode(status))
    settings = Settings()
    tracking.experiment_id(settings, "forked")  # the parent opens MLflow's engine first
    engine = next(iter(SqlAlchemyStore._engine_map.values()))
    def pool_and_runs():
        logged = tracking.log_trials(settings=settings, experiment="forked", run_id="r1", metric="roc_auc", rows=[
            {"trial_id": f"t{i}", "model": "logistic_l1", "params": {"C": i}, "status": "success",
             "mean_score": 0.5 + i / 10, "std_score": 0.0, "fold_scores": [0.5], "fit_seconds": 1.0}
            for i in range(3)])
        return {"pool": id(engine.pool), "logged": logged}
    call = forking.ForkedCall(pool_and_runs)
    tracking.experiment_id(settings, "parent-meanwhile")  # the parent keeps using its own connections
    report({**call.result(), "parent_pool": id(engine.pool)})
elif case == "trial-runs":
    from mlflow import MlflowClient
    from mlfleet.config import Settings
    from mlfleet.results import tracking

    if os.fork():  # as an Airflow task process is forked: MLflow imported (numpy's threads stay behind)
        _, status = os.wait()
        sys.exit(os.waitstatus_to_exitcode(status))
    settings = Settings()
    tracking._RUNS_PER_PROCESS = 10
    os.cpu_count = lambda: 2  # two shares of 20 runs whatever machine runs the test
    rows = [{"trial_id": f"t{i:02d}", "model": "logistic_l1", "params": {"C": i}, "status": "success",
             "mean_score": 0.5 + i / 100, "std_score": 0.0, "fold_scores": [0.5], "fit_seconds": 1.0}
            for i in range(40)]
    logged = tracking.log_trials(settings=settings, experiment="shared", run_id="r1", rows=rows, metric="roc_auc")
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("shared").experiment_id], max_results=100)
    report({"logged": logged, "trials": sorted(r.data.tags.get("mlfleet.trial_id", "") for r in runs
                                                if r.data.tags.get("mlfleet.role") == "trial"),
            "statuses": sorted({r.info.status for r in runs}), "again": tracking.log_trials(
                settings=settings, experiment="shared", run_id="r1", rows=rows, metric="roc_auc")})
elif case in ("spec-error", "unpicklable"):
    from mlfleet.spec import SpecError

    class Unpicklable(Exception):
        def __init__(self, handle):
            super().__init__("no pickle for this one")
            self.handle = handle

    def raise_it():
        if case == "spec-error":
            raise SpecError("target", "'churned' is not a column")
        raise Unpicklable(threading.Lock())

    try:
        forking.in_fork(raise_it)()
    except Exception as err:
        report(error={"type": type(err).__name__, "text": str(err), "field": getattr(err, "field", None),
                      "notes": getattr(err, "__notes__", [])})
else:
    assert forking.can_fork(), "a fresh interpreter without numpy has one thread"
    try:
        report(forking.call_beside({"square": square, "fail": fail, "vanish": vanish}[case], x=3)())
    except Exception as err:
        report(error={"type": type(err).__name__, "text": str(err), "notes": getattr(err, "__notes__", [])})
"""


def _run(case: str, tmp_path: Path) -> tuple[dict, str]:
    env = {**os.environ, "MLFLEET_HOME": str(tmp_path / "home"), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, case], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ")), done.stdout


def test_a_forked_call_returns_its_value_and_its_output_reaches_the_parents_log(tmp_path: Path) -> None:
    result, out = _run("square", tmp_path)

    assert result["value"]["value"] == 9
    assert result["value"]["pid"] != result["parent"]  # it ran in another process
    assert "running beside this process" in out
    assert "squaring 3" in out and "warned from the child" in out  # replayed through the parent's logging


def test_an_exception_in_the_child_is_raised_in_the_parent_as_it_was_with_its_traceback(tmp_path: Path) -> None:
    result, _ = _run("fail", tmp_path)

    assert result["value"] is None
    error = result["error"]
    assert (error["type"], error["text"]) == ("ValueError", "bad input 3")
    assert "raised by fail in forked process" in error["notes"][0]
    assert "ValueError: bad input 3" in error["notes"][0]  # the child's traceback


def test_a_spec_error_keeps_its_field_across_the_fork(tmp_path: Path) -> None:
    result, _ = _run("spec-error", tmp_path)

    error = result["error"]
    assert (error["type"], error["field"]) == ("SpecError", "target")
    assert error["text"] == "target: 'churned' is not a column"  # the line `mlfleet sweep` prints


def test_an_exception_that_does_not_pickle_comes_back_as_its_traceback(tmp_path: Path) -> None:
    result, _ = _run("unpicklable", tmp_path)

    error = result["error"]
    assert error["type"] == "RuntimeError"
    assert "raise_it failed in forked process" in error["text"]
    assert "Unpicklable: no pickle for this one" in error["text"]


def test_a_child_that_ends_without_a_result_is_an_error_not_a_value(tmp_path: Path) -> None:
    result, _ = _run("vanish", tmp_path)

    assert "ended with exit status 3 and no result" in result["error"]["text"]


def test_a_process_with_threads_runs_the_call_itself(tmp_path: Path) -> None:
    result, out = _run("threaded", tmp_path)

    assert result["value"]["value"] == 16
    assert result["value"]["pid"] == result["parent"]
    assert "running beside this process" not in out


def test_the_child_dies_with_its_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT, "orphan"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "MLFLEET_HOME": str(tmp_path / "home")})
    assert parent.stdout is not None
    child = psutil.Process(int(next(x for x in parent.stdout if x.startswith("CHILD ")).split()[1]))
    assert child.is_running()

    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=15)
    parent.stdout.close()

    deadline = time.monotonic() + 15
    while child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the forked child outlived its parent"
        time.sleep(0.1)


def test_a_child_forked_after_the_parent_used_mlflow_opens_its_own_connections(tmp_path: Path) -> None:
    result, _ = _run("mlflow", tmp_path)

    value = result["value"]
    assert value["logged"] == 3
    # SQLAlchemy's fork recipe ran in the child: a new pool, the parent's left to the parent.
    assert value["pool"] != value["parent_pool"]


def test_a_large_sweeps_trial_runs_are_shared_between_processes_once_each(tmp_path: Path) -> None:
    result, out = _run("trial-runs", tmp_path)

    value = result["value"]
    assert "log_share: running beside this process" in out  # the second share ran in a fork
    assert value["logged"] == 40 and value["again"] == 0  # every trial once; a retry logs nothing twice
    assert value["trials"] == [f"t{i:02d}" for i in range(40)]
    assert value["statuses"] == ["FINISHED"]
