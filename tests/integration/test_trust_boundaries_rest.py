"""Trust boundaries through the real scheduler: `mlfleet up`, attacks triggered over REST by a user
who may trigger DAGs but is not an admin (SimpleAuthManager's `user` role).

Whoever may trigger a DAG writes its conf. One legitimate two-round bayes sweep runs first, so
there is a leaderboard, a registered version holding `champion`, and a real continuation conf with
its proof to replay. Then every attack is triggered, and each must be refused: either the trigger
form's schema answers HTTP 400 and no run exists, or the run fails in `prepare` on its first try
(AirflowFailException: no retry), naming the field, before any batch; the file a path names is
never read; and the leaderboard, the sweep's folder, the MLflow registry (versions and aliases)
and the Optuna journal are exactly as they were.

1. Continuation conf forged or replayed: the finished sweep's ref without proof, its real round-1
   conf (proof included) replayed, a foreign or `..` results_dir, a `..` run id, another
   store_conn_id, round -1 and 10**9.
2. Promotion: a retrain over REST needs the feature store (Spark, Feast) and would triple this
   module's time, so `champion` is defended here by replaying finished refs: the experiment
   sweep's own round-1 conf (finished: refused, so finalize cannot run again) and the same conf
   sent to `retrain` (its `decide` is the task that moves `champion`: refused, the sweep is not one
   retrain started). Each asserts `champion` and every version unchanged.
3. `spec` is never a path, `spec_file` only a project spec file.
5. Resource bounds, size and nesting of a spec object.

The attacks run side by side (max_active_runs of experiment_sweep) to keep the module short, so the
results, registry and journal are compared once every attack has ended; each case's own log says
which conf was (or was not) refused.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlfleet.config import Settings, get_settings
from mlfleet.devstack import stack
from mlfleet.devstack.environment import admin_password, passwords_file, write_private
from mlfleet.devstack.ports import free_port
from mlfleet.devstack.rest_client import ApiClient, api_token, send
from mlfleet.storage import private_dir

pytestmark = pytest.mark.slow

SWEEP, RETRAIN = "experiment_sweep", "retrain"
USER = "sweeper"  # SimpleAuthManager role `user`: may read and trigger DAGs; no connections, pools, config
BASE = {"task": "classification", "target": "target", "metric": "accuracy", "dataset": {"builtin": "iris"},
        "cv": {"folds": 2, "seed": 0}, "models": [{"type": "logistic_l1", "params": {"C": [0.1, 1.0]}}]}
# Two rounds of two trials: the second round is a continuation run whose conf carries a proof.
LEGIT = {**BASE, "name": "iris-trust", "search": {"strategy": "bayes", "n_trials": 4, "batch_size": 2},
         "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.01, 10.0], "log": True}}}]}
PASSWD = "root:x:0:0"  # the first line of /etc/passwd: must never reach a log or a response
NOT_RUN = {"upstream_failed"}  # what run_batch and end_round are when prepare failed


@dataclass
class Stack:
    settings: Settings
    url: str
    user: ApiClient  # the restricted user's client
    user_token: str
    admin_token: str
    tmp: Path


@dataclass
class Baseline:
    ref: dict[str, Any]  # the finished sweep's ref (prepare's XCom "sweep")
    round_1_conf: dict[str, Any]  # the real continuation conf its end_round triggered, proof included
    before: dict[str, Any]  # protected_state() once the sweep finished
    runs_before: int  # experiment_sweep runs before the attacks


@dataclass(frozen=True)
class Attack:
    dag_id: str
    conf: Callable[[Baseline, Stack], dict[str, Any]]
    refused_with: tuple[str, ...]  # what prepare's log must say (the field first)
    schema_may_refuse: bool = False  # the trigger form's schema may answer 400 instead of a run
    secret: str | None = None  # text of a file the conf names: never in a log or a response
    experiment: str | None = None  # a spec's name: no sweep folder or MLflow experiment may appear


@dataclass
class Outcome:
    status: int  # HTTP status of the trigger
    body: str
    run_id: str | None = None
    state: str | None = None
    tis: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""


def _spec(name: str, **fields: Any) -> dict[str, Any]:
    return {**BASE, "name": name, **fields}


def _nested(levels: int) -> Any:
    value: Any = [0.1]
    for _ in range(levels):
        value = {"deeper": value}
    return value


def _with_ref(**changes: Any) -> Callable[[Baseline, Stack], dict[str, Any]]:
    """The real round-1 conf (its proof included) with the ref's fields changed."""
    return lambda b, s: {**b.round_1_conf, "sweep": {**b.ref, **changes}}


def _colon_path(b: Baseline, s: Stack) -> dict[str, Any]:
    """A readable spec file whose path passes the form's pattern (it has a colon): read, it would run."""
    path = s.tmp / "leak:spec.yaml"
    path.write_text(json.dumps(_spec("leaked-spec")))
    return {"spec": str(path)}


CONTINUATION = {
    "no-proof": Attack(SWEEP, lambda b, s: {"sweep": b.ref, "round": 1}, ("refused continuation conf: proof: missing",)),
    "replayed-round-conf": Attack(SWEEP, lambda b, s: dict(b.round_1_conf),
                                  ("refused continuation conf: sweep:", "is finished (leaderboard.json is written)")),
    "foreign-results-dir": Attack(SWEEP, _with_ref(results_dir="/tmp"),
                                  ("refused continuation conf: sweep.results_dir: '/tmp'",)),
    "dotdot-results-dir": Attack(SWEEP, lambda b, s: {**b.round_1_conf, "sweep": {
        **b.ref, "results_dir": f"{b.ref['results_dir']}/../{b.ref['run_id']}"}},
        ("refused continuation conf: sweep.results_dir:", "without '..'")),
    "dotdot-run-id": Attack(SWEEP, _with_ref(run_id="../../decisions"),
                            ("refused continuation conf: sweep.run_id:", "not a name mlfleet gives a sweep")),
    "other-store-conn": Attack(SWEEP, _with_ref(store_conn_id="aws_default"),
                               ("refused continuation conf: sweep.store_conn_id: 'aws_default'",)),
    "round-negative": Attack(SWEEP, lambda b, s: {**b.round_1_conf, "round": -1},
                             ("refused continuation conf: round: -1 is out of range",)),
    "round-huge": Attack(SWEEP, lambda b, s: {**b.round_1_conf, "round": 10**9},
                         ("refused continuation conf: round: 1000000000 is out of range",)),
}
PROMOTION = {
    "retrain-replays-sweep-conf": Attack(RETRAIN, lambda b, s: dict(b.round_1_conf),
                                         ("refused continuation conf: sweep:", "not by DAG 'retrain'")),
}
SPEC_AS_PATH = {
    "spec-etc-passwd": Attack(SWEEP, lambda b, s: {"spec": "/etc/passwd"}, ("invalid spec: spec:",),
                              schema_may_refuse=True, secret=PASSWD),
    "spec-project-file-path": Attack(SWEEP, lambda b, s: {"spec": "specs/iris-quick.yaml"}, ("invalid spec: spec:",),
                                     schema_may_refuse=True, secret="A one-minute sweep", experiment="iris-quick"),
    "spec-file-url": Attack(SWEEP, lambda b, s: {"spec": "file:///etc/passwd"},
                            ("invalid spec: spec: expected a mapping of spec fields, got one line of text",),
                            schema_may_refuse=True, secret=PASSWD),
    "spec-path-with-colon": Attack(SWEEP, _colon_path,
                                   ("invalid spec: spec: expected a mapping of spec fields, got one line of text",),
                                   schema_may_refuse=True, secret="leaked-spec", experiment="leaked-spec"),
    "spec-file-traversal": Attack(SWEEP, lambda b, s: {"spec_file": "../../etc/passwd"},
                                  ("invalid spec: spec_file:", "is not one of the project's spec files"),
                                  schema_may_refuse=True, secret=PASSWD),
    "spec-file-absolute": Attack(SWEEP, lambda b, s: {"spec_file": "/etc/passwd"},
                                 ("invalid spec: spec_file:", "is not one of the project's spec files"),
                                 schema_may_refuse=True, secret=PASSWD),
}
ABOVE = "above the deployment's limit"
BOUNDS = {
    "timeout-1e9": Attack(SWEEP, lambda b, s: {"spec": _spec("atk-timeout", budget={"timeout_minutes": 1e9})},
                          ("invalid spec: budget.timeout_minutes:", ABOVE, "MLFLEET_MAX_TIMEOUT_MINUTES"),
                          experiment="atk-timeout"),
    "max-parallel-1e6": Attack(SWEEP, lambda b, s: {"spec": _spec("atk-parallel", budget={"max_parallel": 10**6})},
                               ("invalid spec: budget.max_parallel:", ABOVE, "MLFLEET_MAX_PARALLEL"),
                               experiment="atk-parallel"),
    "override-timeout-1e9": Attack(SWEEP, lambda b, s: {"spec": _spec("atk-otimeout"), "timeout_minutes": 1e9},
                                   ("invalid spec: budget.timeout_minutes:", ABOVE),
                                   schema_may_refuse=True, experiment="atk-otimeout"),
    "override-max-parallel-1e6": Attack(SWEEP, lambda b, s: {"spec": _spec("atk-oparallel"), "max_parallel": 10**6},
                                        ("invalid spec: budget.max_parallel:", ABOVE),
                                        schema_may_refuse=True, experiment="atk-oparallel"),
    "cpu-1e6": Attack(SWEEP, lambda b, s: {"spec": _spec("atk-cpu", resources={"cpu": 1e6})},
                      ("invalid spec: resources.cpu:", ABOVE, "MLFLEET_MAX_CPU"), experiment="atk-cpu"),
    "n-trials-1e9": Attack(SWEEP, lambda b, s: {"spec": {**LEGIT, "name": "atk-trials",
                                                          "search": {"strategy": "bayes", "n_trials": 10**9,
                                                                     "batch_size": 2}}},
                           ("invalid spec: search.n_trials:", ABOVE), experiment="atk-trials"),
    # Nested past the spec's limit (20): the form's schema refuses it at trigger (HTTP 400). 200 levels
    # is the issue's case: with the conf around it, deeper than the ~200 levels of JSON Airflow's task
    # supervisor parses a task's context from (pydantic-core's recursion limit), so no task could
    # start to refuse it (params.nesting_limit).
    "nested-100": Attack(SWEEP, lambda b, s: {"spec": _spec(
        "atk-nested-100", models=[{"type": "logistic_l1", "params": {"C": _nested(100)}}])},
        ("invalid spec: spec: nested more than 20 levels deep",), schema_may_refuse=True,
        experiment="atk-nested-100"),
    "nested-200": Attack(SWEEP, lambda b, s: {"spec": _spec(
        "atk-nested-200", models=[{"type": "logistic_l1", "params": {"C": _nested(200)}}])},
        ("invalid spec: spec: nested more than 20 levels deep",), schema_may_refuse=True,
        experiment="atk-nested-200"),
    "oversized-2mb": Attack(SWEEP, lambda b, s: {"spec": _spec("atk-oversized", target="t" * 2_000_000)},
                            ("invalid spec: spec: larger than 1,000,000 bytes",), experiment="atk-oversized"),
}
ATTACKS = {**CONTINUATION, **PROMOTION, **SPEC_AS_PATH, **BOUNDS}


def protected_state(settings: Settings) -> dict[str, Any]:
    """What no refused run may change: every file of the sweeps and decisions (size, mtime, and the
    leaderboards' bytes), the Optuna journal, MLflow's experiments and runs, and the registry."""
    from mlflow import MlflowClient

    files: dict[str, Any] = {}
    for root in (settings.experiments_dir, settings.decisions_dir):
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file():
                stat = path.stat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.name == "leaderboard.json" else None
                files[str(path)] = (stat.st_size, stat.st_mtime_ns, digest)
    journal = Path(settings.optuna_storage)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    runs = sorted((r.info.run_id, r.info.status) for r in
                  client.search_runs(list(experiments.values()), max_results=1000))
    registry: dict[str, Any] = {}
    for found in client.search_registered_models():
        model = client.get_registered_model(found.name)
        versions = client.search_model_versions(f"name = '{model.name}'")
        registry[model.name] = {"aliases": {k: str(v) for k, v in model.aliases.items()}, "versions": sorted(
            (str(v.version), v.run_id, v.status, v.last_updated_timestamp, tuple(sorted(v.tags.items())))
            for v in versions)}
    journal_stat = journal.stat() if journal.exists() else None
    return {"files": files, "journal": journal_stat and (journal_stat.st_size, journal_stat.st_mtime_ns),
            "experiments": sorted(experiments), "runs": runs, "registry": registry}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`mlfleet up` (stack.up, what the command runs) with a second SimpleAuthManager user, role `user`.

    The stack names its users in AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS (admin only) and offers
    no setting for more, so the environment it builds gets one more user here, and that user's
    password goes into the password file the way the admin's does (Airflow keeps existing entries).
    """
    tmp = tmp_path_factory.mktemp("trust")
    real_env = stack.airflow_env

    def with_restricted_user(settings: Settings, dags_folder: Path | None = None) -> dict[str, str]:
        env = real_env(settings, dags_folder)
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] += f",{USER}:user"
        return env

    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"MLFLEET_HOME": str(tmp / "mlfleet"), "MLFLEET_AIRFLOW_PORT": str(free_port()),
                           "MLFLEET_LOCAL_WORKERS": "1"}.items():
            patch.setenv(key, value)
        patch.setattr(stack, "airflow_env", with_restricted_user)
        settings = get_settings()
        private_dir(settings.airflow_home)  # as `up` makes it: 0700
        admin_password(settings)  # creates the password file
        passwords = json.loads(passwords_file(settings).read_text())
        passwords[USER] = secrets.token_urlsafe(12)
        write_private(passwords_file(settings), json.dumps(passwords) + "\n")
        try:
            info = stack.up(settings)
            admin_token = api_token(info["url"], info["username"], info["password"])
            with ApiClient(info["url"], admin_token, timeout=60) as admin:
                for dag_id in (SWEEP, RETRAIN):
                    admin.wait_for_dag(dag_id, timeout=120)
                    admin.unpause(dag_id)
            user_token = api_token(info["url"], USER, passwords[USER])
            with ApiClient(info["url"], user_token, timeout=60) as user:
                yield Stack(settings, info["url"], user, user_token, admin_token, tmp)
        finally:
            stack.down(settings)


def _http(live: Stack, token: str) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


@pytest.fixture(scope="module")
def baseline(live: Stack) -> Baseline:
    """A legitimate sweep, triggered by the restricted user, run to the end: what the attacks must not touch."""
    api = live.user
    first = api.trigger(SWEEP, {"spec": LEGIT})["dag_run_id"]
    runs, state = api.wait_for_sweep(SWEEP, first, timeout=300)
    assert state == "success" and len(runs) == 2, (runs, state)
    ref = api.xcom(SWEEP, first, "prepare", key="sweep")
    round_1_conf = api.dag_run(SWEEP, runs[1])["conf"]
    assert round_1_conf["sweep"] == ref and round_1_conf["round"] == 1 and round_1_conf["proof"], round_1_conf
    assert (Path(ref["results_dir"]) / "leaderboard.json").is_file()
    before = protected_state(live.settings)
    assert before["registry"]["iris-trust"]["aliases"] == {"champion": "1"}, before["registry"]
    return Baseline(ref, round_1_conf, before, len(api.dag_runs(SWEEP)))


def _task_log(http: httpx.Client, dag_id: str, run_id: str, expected: tuple[str, ...]) -> str:
    """prepare's first attempt's log over REST, as JSON lines; waits a little for the last lines."""
    text, deadline = "", time.monotonic() + 20
    while time.monotonic() < deadline:
        resp = http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/prepare/logs/1",
                        params={"full_content": True}, headers={"Accept": "application/json"})
        resp.raise_for_status()
        text = "\n".join(json.dumps(line, ensure_ascii=False) if not isinstance(line, str) else line
                         for line in resp.json()["content"])
        if all(part in text for part in expected):
            break
        time.sleep(1)
    return text


@pytest.fixture(scope="module")
def outcomes(live: Stack, baseline: Baseline) -> dict[str, Outcome]:
    """Every attack triggered by the restricted user at once, each run followed to its end."""
    results: dict[str, Outcome] = {}
    with _http(live, live.user_token) as http:
        for name, attack in ATTACKS.items():
            resp = send(http, "POST", f"/api/v2/dags/{attack.dag_id}/dagRuns",
                        json={"logical_date": None, "conf": attack.conf(baseline, live)})
            results[name] = Outcome(resp.status_code, resp.text[:5000],
                                    resp.json()["dag_run_id"] if resp.status_code == 200 else None)
        for name, outcome in results.items():
            if outcome.run_id is None:
                continue
            dag_id = ATTACKS[name].dag_id
            outcome.state = live.user.wait_for_run(dag_id, outcome.run_id, timeout=300)
            outcome.tis = live.user.task_instances(dag_id, outcome.run_id)
            outcome.log = _task_log(http, dag_id, outcome.run_id, ATTACKS[name].refused_with)
    return results


@pytest.fixture(scope="module")
def after(live: Stack, outcomes: dict[str, Outcome]) -> dict[str, Any]:
    return protected_state(live.settings)


def _assert_refused(name: str, live: Stack, baseline: Baseline, outcomes: dict[str, Outcome],
                    after: dict[str, Any]) -> None:
    attack, outcome = ATTACKS[name], outcomes[name]
    if outcome.run_id is None:  # refused at the door: only the form's schema may do that, with a 400
        assert attack.schema_may_refuse and outcome.status == 400, (outcome.status, outcome.body)
        assert "Invalid input for param" in outcome.body, outcome.body
    else:
        assert outcome.status == 200, (outcome.status, outcome.body)
        states = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in outcome.tis}
        assert outcome.state == "failed", states
        assert states["prepare"] == ("failed", 1), f"prepare must fail on its first try, not retry: {states}"
        assert {s for task, (s, _) in states.items() if task != "prepare"} <= NOT_RUN, states
        assert "AirflowFailException" in outcome.log, outcome.log[-3000:]
        for part in attack.refused_with:
            assert part in outcome.log, f"{part!r} not in prepare's log:\n{outcome.log[-3000:]}"
    if attack.secret:
        assert attack.secret not in outcome.log and attack.secret not in outcome.body
    if attack.experiment:
        assert not (live.settings.experiments_dir / attack.experiment).exists()
        assert attack.experiment not in after["experiments"]
    # Results, registry (versions and aliases, champion first) and journal are as before the attacks.
    assert after["registry"]["iris-trust"]["aliases"] == {"champion": "1"}
    assert after == baseline.before


def test_the_restricted_user_may_trigger_but_is_not_an_admin(live: Stack, baseline: Baseline) -> None:
    """The attacks come from a user who can run sweeps (the baseline's was theirs) and nothing more."""
    with _http(live, live.user_token) as user, _http(live, live.admin_token) as admin:
        assert user.get("/api/v2/connections").status_code == 403
        assert admin.get("/api/v2/connections").status_code == 200
        assert user.post("/api/v2/variables", json={"key": "k", "value": "v"}).status_code == 403
    assert baseline.before["registry"]["iris-trust"]["aliases"] == {"champion": "1"}


@pytest.mark.parametrize("name", list(CONTINUATION))
def test_a_forged_or_replayed_continuation_conf_is_refused(name: str, live: Stack, baseline: Baseline,
                                                           outcomes: dict[str, Outcome], after: dict[str, Any]) -> None:
    _assert_refused(name, live, baseline, outcomes, after)
    claims = sorted(p.name for p in (Path(baseline.ref["results_dir"]) / "rounds").glob("*.claim"))
    assert claims == ["001.claim"]  # the real round 1's, and no other


@pytest.mark.parametrize("name", list(PROMOTION))
def test_a_replayed_ref_cannot_reach_a_decision(name: str, live: Stack, baseline: Baseline,
                                                outcomes: dict[str, Outcome], after: dict[str, Any]) -> None:
    _assert_refused(name, live, baseline, outcomes, after)
    assert not live.settings.decisions_dir.exists() or not any(live.settings.decisions_dir.rglob("*.json"))


@pytest.mark.parametrize("name", list(SPEC_AS_PATH))
def test_the_spec_param_is_never_a_path(name: str, live: Stack, baseline: Baseline,
                                        outcomes: dict[str, Outcome], after: dict[str, Any]) -> None:
    _assert_refused(name, live, baseline, outcomes, after)


@pytest.mark.parametrize("name", list(BOUNDS))
def test_a_spec_beyond_the_deployments_bounds_is_refused(name: str, live: Stack, baseline: Baseline,
                                                         outcomes: dict[str, Outcome], after: dict[str, Any]) -> None:
    _assert_refused(name, live, baseline, outcomes, after)


def test_a_refused_trigger_created_no_run(live: Stack, baseline: Baseline, outcomes: dict[str, Outcome]) -> None:
    """Runs of experiment_sweep after the attacks: the baseline's and one per attack the form let through."""
    let_through = sum(1 for name, o in outcomes.items() if o.run_id and ATTACKS[name].dag_id == SWEEP)
    assert len(live.user.dag_runs(SWEEP)) == baseline.runs_before + let_through
    retrain_runs = [r["dag_run_id"] for r in live.user.dag_runs(RETRAIN)]
    assert retrain_runs == [o.run_id for name, o in outcomes.items() if ATTACKS[name].dag_id == RETRAIN]
