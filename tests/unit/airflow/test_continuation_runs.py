"""A continuation run is accepted only when it is the scheduler's own (mlfleet.sweep.continuation).

Every test starts a real bayes sweep the way the DAG's prepare does (`start_round`, round 0), then
hands `start_round` a continuation conf: the one the sweep's end_round builds, or an attacker's.
Each refusal fails the task at once (AirflowFailException: no retry), names what was wrong, and
leaves the sweep's folder exactly as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from mlfleet.config import get_settings
from mlfleet.storage import write_json_atomic
from mlfleet.sweep import SweepContext, prepare, run_id_from_airflow
from mlfleet.sweep.continuation import TOKEN_FILE, next_continuation, round_proof
from mlfleet.sweep.rounds import continuation_run_id

SPEC = {"name": "iris-rounds", "task": "classification", "target": "target", "metric": "accuracy",
        "dataset": {"builtin": "iris"}, "cv": {"folds": 2, "seed": 0},
        "search": {"strategy": "bayes", "n_trials": 6, "batch_size": 2},  # three rounds: 0, 1, 2
        "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.1, 10.0], "log": True}}}]}
AIRFLOW_RUN = "manual__2026-12-01T10:00:00+00:00"


class TaskInstance:
    """What start_round uses of Airflow's task instance: its DAG and XCom pushes."""

    def __init__(self, dag_id: str) -> None:
        self.dag_id = dag_id
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _prepare(params: dict[str, Any], run_id: str) -> SweepContext:
    return prepare(SPEC, settings=get_settings(), run_id=run_id_from_airflow(run_id))


def start_round(params: dict[str, Any], *, dag_id: str = "experiment_sweep", run_id: str = AIRFLOW_RUN
                ) -> tuple[list[dict[str, Any]], TaskInstance]:
    from mlfleet.airflow.sweep_tasks import start_round as start

    ti = TaskInstance(dag_id)
    return start(params, run_id, ti, _prepare), ti


@pytest.fixture
def sweep(settings) -> SweepContext:
    """Round 0 of a three-round bayes sweep, started by experiment_sweep's run AIRFLOW_RUN."""
    batches, ti = start_round({})
    assert batches and ti.xcom["round"] == 0
    return SweepContext.load(ti.xcom["sweep"])


def own_conf(sweep: SweepContext, round_index: int, dag_id: str = "experiment_sweep") -> dict[str, Any]:
    """The conf the sweep's end_round gives round `round_index`'s run."""
    return next_continuation(sweep, dag_id=dag_id, round_index=round_index - 1)["conf"]


def run_of(sweep: SweepContext, round_index: int) -> str:
    """The run id end_round gives round `round_index`."""
    return next_continuation(sweep, dag_id="experiment_sweep", round_index=round_index - 1)["trigger_run_id"]


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def refused(settings, conf: dict[str, Any], match: str, *, dag_id: str = "experiment_sweep",
            run_id: str = "manual__2026-12-01T11:00:00+00:00") -> None:
    """start_round fails without retry, naming `match`, and writes nothing under MLFLEET_HOME's experiments."""
    from airflow.sdk.exceptions import AirflowFailException

    before = snapshot(settings.experiments_dir)
    with pytest.raises(AirflowFailException, match=match):
        start_round(conf, dag_id=dag_id, run_id=run_id)
    assert snapshot(settings.experiments_dir) == before


# The scheduler's own continuation ----------------------------------------------------------------

def test_the_continuation_end_round_triggers_is_accepted_and_so_is_its_retry(sweep: SweepContext) -> None:
    conf = own_conf(sweep, 1)
    assert set(conf) == {"sweep", "round", "proof"} and conf["sweep"] == sweep.ref()
    batches, ti = start_round(conf, run_id=run_of(sweep, 1))
    assert ti.xcom == {"sweep": sweep.ref(), "round": 1}
    assert sum(len(b["trials"]) for b in batches) == 2
    again, _ = start_round(conf, run_id=run_of(sweep, 1))  # a retry of the same run's prepare
    assert again == batches
    assert next_continuation(sweep, dag_id="experiment_sweep", round_index=2) is None  # round 2 is the last


def test_prepare_writes_a_token_only_the_worker_reads(sweep: SweepContext) -> None:
    token = sweep.results_path / TOKEN_FILE
    assert len(token.read_text()) >= 40
    assert token.stat().st_mode & 0o777 == 0o600
    assert sweep.airflow_run is not None and str(sweep.airflow_run) == f"experiment_sweep/{AIRFLOW_RUN}"


# Where the ref points ----------------------------------------------------------------------------

def test_a_results_dir_outside_the_experiments_root_is_refused(settings, sweep: SweepContext, tmp_path: Path) -> None:
    # A whole, valid sweep folder (context, token) somewhere else: the proof is right for that copy.
    elsewhere = tmp_path / "elsewhere" / sweep.experiment / sweep.run_id
    shutil.copytree(sweep.results_dir, elsewhere)
    copy = SweepContext.load(elsewhere).model_copy(update={"results_dir": str(elsewhere)}).save()
    refused(settings, own_conf(copy, 1), r"sweep\.results_dir: .*elsewhere.* is not sweep iris-rounds/.*'s folder")


def test_dot_dot_in_the_results_dir_is_refused(settings, sweep: SweepContext) -> None:
    conf = own_conf(sweep, 1)
    detour = str(Path(sweep.results_dir).parent / ".." / sweep.experiment / sweep.run_id)
    refused(settings, {**conf, "sweep": {**conf["sweep"], "results_dir": detour}}, r"sweep\.results_dir: .*without '\.\.'")
    relative = os.path.relpath(sweep.results_dir)
    refused(settings, {**conf, "sweep": {**conf["sweep"], "results_dir": relative}}, r"sweep\.results_dir: .*absolute")


def test_a_symlink_out_of_the_experiments_root_is_refused(settings, sweep: SweepContext, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(sweep.results_dir, outside / sweep.run_id)
    linked = SweepContext.load(outside / sweep.run_id).model_copy(update={
        "experiment": "linked", "results_dir": str(settings.experiments_dir / "linked" / sweep.run_id)})
    write_json_atomic(outside / sweep.run_id / "context.json", linked.model_dump(mode="json"))
    (settings.experiments_dir / "linked").symlink_to(outside)
    conf = own_conf(sweep, 1)
    ref = {**conf["sweep"], "experiment": "linked", "results_dir": str(settings.experiments_dir / "linked" / sweep.run_id)}
    refused(settings, {**conf, "sweep": ref}, r"sweep\.results_dir: .*symlinks out of it are not followed")


@pytest.mark.parametrize("conn", ["aws_default", "someone_elses_connection"])
def test_a_store_connection_other_than_the_configured_one_is_refused(settings, sweep: SweepContext, conn: str) -> None:
    conf = own_conf(sweep, 1)
    refused(settings, {**conf, "sweep": {**conf["sweep"], "store_conn_id": conn}},
            rf"sweep\.store_conn_id: '{conn}' is not the connection this deployment keeps sweep state with \(None\)")


@pytest.mark.parametrize("field,value,match", [
    ("experiment", "../iris-rounds", r"sweep\.experiment: '\.\./iris-rounds' is not a name"),
    ("run_id", "..", r"sweep\.run_id: '\.\.' is not a name"),
    ("results_dir", None, r"sweep\.results_dir: Input should be a valid string"),
    ("extra", "x", r"sweep\.extra: Extra inputs are not permitted"),
])
def test_a_ref_that_is_not_one_is_refused(settings, sweep: SweepContext, field: str, value: Any, match: str) -> None:
    conf = own_conf(sweep, 1)
    refused(settings, {**conf, "sweep": {**conf["sweep"], field: value}}, match)
    refused(settings, {**conf, "sweep": "a string"}, r"sweep: expected a sweep ref")


def test_object_store_refs_must_name_the_configured_prefix_and_connection(monkeypatch, settings) -> None:
    from mlfleet.sweep.continuation import ContinuationRefused, accept_continuation

    monkeypatch.setenv("MLFLEET_SWEEP_STATE", "object_store")
    monkeypatch.setenv("MLFLEET_OBJECT_STORE_URI", "s3://fleet/state")
    store = get_settings()
    ours = "s3://fleet/state/experiments/iris-rounds/20261201T100000-0123456789abcdef"
    ref = {"experiment": "iris-rounds", "run_id": "20261201T100000-0123456789abcdef", "store_conn_id": "aws_default"}
    for results_dir, conn, match in [
        ("s3://elsewhere/experiments/iris-rounds/20261201T100000-0123456789abcdef", "aws_default", "results_dir"),
        ("s3://fleet/state/experiments/x/../iris-rounds/20261201T100000-0123456789abcdef", "aws_default", "results_dir"),
        (ours.replace("s3://", "/"), "aws_default", "results_dir"),
        (ours, "their_aws", "store_conn_id"),
        (ours, None, "store_conn_id"),
    ]:
        conf = {"sweep": {**ref, "results_dir": results_dir, "store_conn_id": conn}, "round": 1, "proof": "x"}
        with pytest.raises(ContinuationRefused, match=rf"^sweep\.{match}: "):  # refused before the store is read
            accept_continuation(conf, dag_id="experiment_sweep", airflow_run_id="r", settings=store)


# The round ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("round_index,match", [
    (-1, r"round: -1 is out of range: a continuation runs round 1 or later"),
    (0, r"round: 0 is out of range"),
    (3, r"round: 3 is out of range: sweep iris-rounds/.* has rounds 1\.\.2 after its first"),
    (10**9, r"round: 1000000000 is out of range"),
    ("1", r"round: '1': expected the round's number"),
    (True, r"round: True: expected the round's number"),
    (None, r"round: None: expected the round's number"),
])
def test_a_round_out_of_range_is_refused(settings, sweep: SweepContext, round_index: Any, match: str) -> None:
    conf = own_conf(sweep, 1)
    # The proof is the right one for that round: the range alone refuses it.
    proof = round_proof(sweep, dag_id="experiment_sweep", round_index=round_index) if isinstance(round_index, int) else "x"
    refused(settings, {**conf, "round": round_index, "proof": proof}, match)


def test_a_replayed_round_is_refused(settings, sweep: SweepContext) -> None:
    conf = own_conf(sweep, 1)  # visible to anyone who may read the DAG, proof included
    start_round(conf, run_id=run_of(sweep, 1))
    refused(settings, conf, r"round: round 1 of sweep iris-rounds/.* was already run by Airflow run "
                            rf"experiment_sweep/{run_of(sweep, 1)}; a round runs once")


def test_a_round_recorded_without_a_claim_is_refused(settings, sweep: SweepContext) -> None:
    from mlfleet.sweep.propose import round_file

    write_json_atomic(round_file(sweep, 1), [])
    refused(settings, own_conf(sweep, 1), r"round: round 1 of sweep .* is already recorded")


@pytest.mark.parametrize("dag_id,written", [("experiment_sweep", "leaderboard.json"), ("retrain", "decision.json")])
def test_a_finished_sweep_is_never_continued(settings, dag_id: str, written: str) -> None:
    # A finished retrain's ref replayed would run decide again and could move `champion` back.
    _, ti = start_round({}, dag_id=dag_id)
    sweep = SweepContext.load(ti.xcom["sweep"])
    start_round(own_conf(sweep, 1, dag_id), dag_id=dag_id, run_id=run_of(sweep, 1))
    write_json_atomic(sweep.results_path / written, {"finished": True})
    refused(settings, own_conf(sweep, 2, dag_id), rf"sweep: sweep iris-rounds/.* is finished \({written} is written\)",
            dag_id=dag_id, run_id=run_of(sweep, 2))


def test_a_sweep_another_dag_started_is_refused(settings, sweep: SweepContext) -> None:
    refused(settings, own_conf(sweep, 1, dag_id="retrain"),
            r"sweep: sweep iris-rounds/.* was started by experiment_sweep, not by DAG 'retrain'", dag_id="retrain")


# The proof ---------------------------------------------------------------------------------------

def test_a_missing_or_wrong_proof_is_refused(settings, sweep: SweepContext) -> None:
    conf = own_conf(sweep, 1)
    refused(settings, {k: v for k, v in conf.items() if k != "proof"}, r"proof: missing")
    refused(settings, {**conf, "proof": ""}, r"proof: missing")
    refused(settings, {**conf, "proof": 7}, r"proof: missing")
    refused(settings, {**conf, "proof": "0" * 64}, r"proof: does not prove round 1 of sweep iris-rounds/")
    refused(settings, {**conf, "proof": "é" * 64}, r"proof: does not prove round 1")
    # One round's proof (visible in that run's conf) proves nothing for another round.
    refused(settings, {**own_conf(sweep, 2), "round": 1}, r"proof: does not prove round 1")
    # The token itself, or a proof made with another token, is no proof either.
    token = (sweep.results_path / TOKEN_FILE).read_text()
    refused(settings, {**conf, "proof": token}, r"proof: does not prove round 1")
    other = sweep.model_copy(update={"results_dir": str(sweep.results_path.parent / "other")})
    (other.results_path).mkdir()
    (other.results_path / TOKEN_FILE).write_text("another-token")
    refused(settings, {**conf, "proof": round_proof(other, dag_id="experiment_sweep", round_index=1)},
            r"proof: does not prove round 1")


def test_a_round_run_id_is_the_sweeps_own_and_the_same_on_every_retry(sweep: SweepContext) -> None:
    own = run_of(sweep, 1)
    assert own == run_of(sweep, 1) and own != run_of(sweep, 2)
    assert own.startswith(f"{continuation_run_id(sweep.experiment, sweep.run_id, 1)}__") and len(own.split("__")[-1]) == 16
    (sweep.results_path / TOKEN_FILE).write_text("another-token")  # another sweep of the same name: another tag
    assert run_of(sweep, 1) != own


# What the context names ------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["data_path", "holdout_path"])
def test_a_context_data_path_outside_the_data_roots_is_refused(settings, sweep: SweepContext, monkeypatch,
                                                               tmp_path: Path, field: str) -> None:
    monkeypatch.setenv("MLFLEET_DATA_ROOTS", str(tmp_path / "data"))
    secret = tmp_path / "secret.parquet"
    secret.write_bytes(b"not yours")
    sweep.model_copy(update={field: str(secret)}).save()
    refused(settings, own_conf(sweep, 1), rf"context\.{field}: '.*secret\.parquet' is neither in the sweep's folder "
                                          r".* nor allowed: .* is outside the allowed data roots")
    (tmp_path / "data").mkdir()
    inside = tmp_path / "data" / "train.parquet"
    shutil.copy(Path(sweep.data_path), inside)
    sweep.model_copy(update={field: str(inside)}).save()  # a path a spec could name is fine
    start_round(own_conf(sweep, 1), run_id=run_of(sweep, 1))


def test_a_context_that_names_another_sweep_is_refused(settings, sweep: SweepContext) -> None:
    sweep.model_copy(update={"run_id": "20261201T100000-ffffffffffffffff"}).save()
    refused(settings, own_conf(sweep, 1), r"sweep: .*context\.json describes sweep iris-rounds/20261201T100000-ffff")


def test_the_local_backend_refuses_training_data_outside_the_roots(settings, monkeypatch, tmp_path: Path) -> None:
    from mlfleet.backends import local

    monkeypatch.setenv("MLFLEET_DATA_ROOTS", str(tmp_path / "data"))
    secret = tmp_path / "secret.parquet"
    secret.write_bytes(b"not yours")
    batch = settings.experiments_dir / "x" / "r" / "batches" / "b0"
    with pytest.raises(ValueError, match=r"data_path: '.*secret\.parquet' is outside the allowed data roots"):
        local.stage_batch(batch, job={"trials": []}, data_path=secret)
    assert not batch.exists()
    (tmp_path / "data").mkdir()
    for allowed in (tmp_path / "data" / "t.parquet", settings.experiments_dir / "x" / "r" / "data" / "t.parquet"):
        allowed.parent.mkdir(parents=True, exist_ok=True)
        allowed.write_bytes(b"ok")
        assert local.check_training_data(batch, allowed) == allowed.resolve()
    # A batch of object-store state trains on its copy, in `data` beside its scratch folder.
    scratch = tmp_path / "scratch"
    (scratch / "data").mkdir(parents=True)
    (scratch / "data" / "t.parquet").write_bytes(b"ok")
    assert local.check_training_data(scratch / "batch", scratch / "data" / "t.parquet")
    with pytest.raises(ValueError, match="outside the allowed data roots"):
        local.check_training_data(tmp_path / "batch", secret)  # beside the batch, but not its data folder


# Two Airflow runs, one sweep id ----------------------------------------------------------------

def test_the_runs_whose_ids_collided_get_their_own_sweeps(settings) -> None:
    _, a = start_round({}, run_id="manual__2026-11-23T10:00:00.000064+00:00")
    _, b = start_round({}, run_id="manual__2026-11-23T10:00:00.000169+00:00")
    assert a.xcom["sweep"]["results_dir"] != b.xcom["sweep"]["results_dir"]
    owners = {json.loads((Path(x.xcom["sweep"]["results_dir"]) / "airflow_run.json").read_text())["run_id"]
              for x in (a, b)}
    assert len(owners) == 2


def test_a_folder_another_run_owns_is_refused_and_a_retry_is_not(settings, sweep: SweepContext, monkeypatch) -> None:
    # Force a collision: other Airflow runs whose ids map to this sweep's folder.
    monkeypatch.setattr(sys.modules[__name__], "run_id_from_airflow", lambda run_id: sweep.run_id)
    owner = re.escape(f"Airflow run experiment_sweep/{AIRFLOW_RUN}")
    refused(settings, {}, rf"sweep folder .*{sweep.run_id} belongs to {owner}; "
                          r"this prepare is Airflow run experiment_sweep/manual__2026-12-01T11:00:00\+00:00")
    refused(settings, {}, rf"belongs to {owner}; this prepare is Airflow run retrain/{re.escape(AIRFLOW_RUN)}",
            dag_id="retrain", run_id=AIRFLOW_RUN)
    token = (sweep.results_path / TOKEN_FILE).read_text()
    batches, ti = start_round({})  # the run that owns it, retried: the same folder, the same token
    assert ti.xcom["sweep"] == sweep.ref() and (sweep.results_path / TOKEN_FILE).read_text() == token
