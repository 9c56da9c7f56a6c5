"""Continuation runs prove they are the scheduler's own before a round is asked or a sweep finished.

A continuation run's conf (`sweep`, `round`) comes from whoever may trigger the DAG, so it is
accepted only when it resolves to a sweep this deployment started, in the place it keeps sweeps,
started by the same DAG, and carries the proof that the sweep's own `end_round` put in it:

- `sweep.results_dir` is exactly `<experiments root>/<experiment>/<run id>` (a local path is
  resolved: no `..`, no symlink out of the root); `sweep.store_conn_id` is the configured one;
- the context there was written by a prepare of this DAG (`airflow_run.dag_id`), and its data
  paths lie in the sweep's folder or MLFLEET_DATA_ROOTS;
- `round` is an integer in [1, rounds), not yet taken by another Airflow run, and the sweep has no
  leaderboard or decision yet (a finished sweep is never continued: a replayed ref cannot run
  `decide` again and move `champion` back);
- `proof` is the HMAC of (DAG, experiment, run id, round) under the random token prepare wrote
  into the sweep's folder (mode 0600: only the workers read it). A run's conf is visible to anyone
  who may read the DAG, so one round's proof proves nothing for another round, and the round it
  proves is taken by its first run: a replay is refused;
- the run id `end_round` gives the round's run (`tokens.round_run_id`) carries a tag under the
  same token, so nobody can take that id first and stall the sweep. The id itself is not
  required: `dag.test()` runs a continuation under an id of its own, and a proof copied into
  another run still takes only the round its first run claims.

Every check reads; the round's claim (`rounds/NNN.claim`) is the first write, after all passed.
docs/rounds.md ("How a continuation run proves it is one") says the same for operators.
"""

from __future__ import annotations

import hmac
import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlfleet.config import Settings
from mlfleet.storage import Location, display, is_object_path, is_remote, write_json_once
from mlfleet.sweep.context import CONTEXT_FILE, DATA_FILE, AirflowRun, SweepContext, SweepRef, experiments_root
from mlfleet.sweep.progress import DECISION_FILE, LEADERBOARD_FILE
from mlfleet.sweep.rounds import next_round
from mlfleet.sweep.tokens import TOKEN_FILE, MissingToken, round_run_id, sign, write_token

__all__ = ["TOKEN_FILE", "ContinuationRefused", "accept_continuation", "next_continuation", "round_proof",
           "write_token"]
PROOF_KEY = "proof"  # the conf key of a continuation's proof
# An experiment name or a sweep run id, as mlfleet writes them: one path segment, never `..`.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


class ContinuationRefused(ValueError):
    """A continuation conf that does not resolve to a round this scheduler triggered; names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.field, self.message)


def round_proof(context: SweepContext, *, dag_id: str, round_index: int) -> str:
    """What the continuation run for `round_index` of this sweep carries in its conf."""
    try:
        return sign(context.results_path, dag_id, context.experiment, context.run_id, str(round_index))
    except MissingToken:
        raise ContinuationRefused("sweep", f"{context.experiment}/{context.run_id} has no continuation token "
                                           f"({display(context.results_path / TOKEN_FILE)}); it was prepared before "
                                           "continuations had to prove themselves: start the sweep again") from None


def expected_run_id(context: SweepContext, round_index: int) -> str:
    """The Airflow run id of round `round_index` of this sweep (see `tokens.round_run_id`)."""
    return round_run_id(context.results_path, experiment=context.experiment, run_id=context.run_id,
                        round_index=round_index)


def next_continuation(context: SweepContext, *, dag_id: str, round_index: int) -> dict[str, Any] | None:
    """The run `end_round` triggers after round `round_index` (its run id, and its conf with the
    proof for the next round), or None after the last round."""
    following = next_round(sweep_ref=context.ref(), round_index=round_index, rounds=context.rounds)
    if following is not None:
        following["conf"][PROOF_KEY] = round_proof(context, dag_id=dag_id, round_index=round_index + 1)
        following["trigger_run_id"] = expected_run_id(context, round_index + 1)
    return following


def claim_file(context: SweepContext, round_index: int) -> Location:
    return context.results_path / "rounds" / f"{round_index:03d}.claim"


def accept_continuation(conf: dict[str, Any], *, dag_id: str, airflow_run_id: str, settings: Settings
                        ) -> tuple[SweepContext, int]:
    """The sweep and round a continuation conf names, once every check passed and the round is
    claimed for this Airflow run (a retry of the run that claimed it passes again).

    Raises ContinuationRefused, naming the field, for anything else; nothing is written then.
    """
    ref = _ref(conf.get("sweep"))
    round_index = _round(conf.get("round"))
    if ref.store_conn_id != settings.store_conn_id:
        raise ContinuationRefused("sweep.store_conn_id", f"{ref.store_conn_id!r} is not the connection this "
                                  f"deployment keeps sweep state with ({settings.store_conn_id!r})")
    directory = _results_dir(ref, settings)
    context = _load(directory, ref)
    where = f"sweep {ref.experiment}/{ref.run_id}"
    if context.airflow_run is None or context.airflow_run.dag_id != dag_id:
        started = context.airflow_run.dag_id if context.airflow_run else "no Airflow run"
        raise ContinuationRefused("sweep", f"{where} was started by {started}, not by DAG {dag_id!r}; "
                                           "only the DAG that started a sweep continues it")
    if round_index >= context.rounds:
        later = f"rounds 1..{context.rounds - 1} after its first" if context.rounds > 1 else "no round after its first"
        raise ContinuationRefused("round", f"{round_index} is out of range: {where} has {later}")
    _check_proof(conf.get(PROOF_KEY), context, dag_id=dag_id, round_index=round_index)
    _check_data_paths(context, directory, settings)
    for name in (LEADERBOARD_FILE, DECISION_FILE):
        if (directory / name).exists():
            raise ContinuationRefused("sweep", f"{where} is finished ({name} is written); a finished sweep is "
                                               "never continued")
    owner = AirflowRun(dag_id=dag_id, run_id=airflow_run_id)
    _check_unclaimed(context, round_index, owner)
    if not write_json_once(claim_file(context, round_index), owner.model_dump()):
        _check_unclaimed(context, round_index, owner)  # another run took it meanwhile: refused; ours: a retry
    return context, round_index


def _ref(value: Any) -> SweepRef:
    if not isinstance(value, dict):
        raise ContinuationRefused("sweep", f"expected a sweep ref (experiment, run_id, results_dir), got {type(value).__name__}")
    try:
        ref = SweepRef.model_validate(value)
    except ValidationError as err:
        first = err.errors()[0]
        raise ContinuationRefused("sweep." + ".".join(str(p) for p in first["loc"]), first["msg"]) from None
    for field in ("experiment", "run_id"):
        name = getattr(ref, field)
        if not _NAME.fullmatch(name) or ".." in name:
            raise ContinuationRefused(f"sweep.{field}", f"{name!r} is not a name mlfleet gives a sweep")
    return ref


def _round(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContinuationRefused("round", f"{value!r}: expected the round's number, an integer >= 1")
    if value < 1:
        raise ContinuationRefused("round", f"{value} is out of range: a continuation runs round 1 or later "
                                           "(round 0 is the run that starts the sweep)")
    return value


def _results_dir(ref: SweepRef, settings: Settings) -> Location:
    """The sweep's folder in this deployment's experiments root; `ref.results_dir` must be exactly it."""
    root = experiments_root(settings)
    expected = root / ref.experiment / ref.run_id
    field, given = "sweep.results_dir", ref.results_dir
    if is_object_path(root):
        if given != display(expected):
            raise ContinuationRefused(field, f"{given!r} is not sweep {ref.experiment}/{ref.run_id}'s folder in "
                                             f"this deployment's object store ({display(expected)})")
        return expected
    path = Path(given)
    if is_remote(given) or not path.is_absolute() or ".." in path.parts:
        raise ContinuationRefused(field, f"{given!r}: expected the absolute local path of the sweep's folder, "
                                         "without '..'")
    resolved_root = Path(root).resolve()
    if path.resolve() != resolved_root / ref.experiment / ref.run_id or \
            Path(expected).resolve() != resolved_root / ref.experiment / ref.run_id:
        raise ContinuationRefused(field, f"{given!r} is not sweep {ref.experiment}/{ref.run_id}'s folder in the "
                                         f"experiments root {resolved_root} (symlinks out of it are not followed)")
    return Path(expected)


def _load(directory: Location, ref: SweepRef) -> SweepContext:
    path = directory / CONTEXT_FILE
    if not path.is_file():
        raise ContinuationRefused("sweep", f"no sweep {ref.experiment}/{ref.run_id} in this deployment "
                                           f"({display(directory)} has no {CONTEXT_FILE})")
    try:
        context = SweepContext.model_validate_json(path.read_text())
    except ValidationError as err:
        raise ContinuationRefused("sweep", f"{display(path)} is not a sweep context: {str(err).splitlines()[0]}") from None
    if (context.experiment, context.run_id) != (ref.experiment, ref.run_id) or \
            context.store_conn_id != ref.store_conn_id or not _same_place(context.results_dir, directory):
        raise ContinuationRefused("sweep", f"{display(path)} describes sweep {context.experiment}/{context.run_id} "
                                           f"in {context.results_dir}, not the one the conf names")
    return context


def _same_place(recorded: str, directory: Location) -> bool:
    if is_object_path(directory):
        return recorded == display(directory)
    return not is_remote(recorded) and Path(recorded).resolve() == Path(directory).resolve()


def _check_proof(given: Any, context: SweepContext, *, dag_id: str, round_index: int) -> None:
    if not isinstance(given, str) or not given:
        raise ContinuationRefused(PROOF_KEY, "missing: a continuation run carries the proof its sweep's end_round "
                                             "gives it; a sweep is started without `sweep` and `round`")
    expected = round_proof(context, dag_id=dag_id, round_index=round_index)
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode()):
        raise ContinuationRefused(PROOF_KEY, f"does not prove round {round_index} of sweep "
                                             f"{context.experiment}/{context.run_id}; only its end_round triggers it")


def _check_data_paths(context: SweepContext, directory: Location, settings: Settings) -> None:
    """A context's training and holdout sets lie in the sweep's folder (where prepare stages them)
    or pass the check a spec's `dataset.path` gets (MLFLEET_DATA_ROOTS); a remote backend's copies
    lie where prepare puts them in the object store."""
    from mlfleet.backends import naming

    for field in ("data_path", "holdout_path"):
        value = getattr(context, field)
        if value is not None:
            check_sweep_data(value, directory=directory, settings=settings, field=field)
    store = settings.object_store_uri
    expected = {"data_uri": naming.dataset_uri(str(store), context.data_sha256, DATA_FILE),
                "results_store_uri": naming.run_uri(str(store), context.experiment, context.run_id)}
    for field, uri in expected.items():
        value = getattr(context, field)
        if value is not None and value != uri:
            raise ContinuationRefused(f"context.{field}", f"{value!r} is not where prepare puts it ({uri})")


def check_sweep_data(value: str, *, directory: Location, settings: Settings, field: str = "data_path") -> None:
    """`value` (a path a sweep context names) lies inside the sweep's folder, or in MLFLEET_DATA_ROOTS."""
    from mlfleet.spec import SpecError
    from mlfleet.sweep.datasets import check_data_path

    if is_object_path(directory):
        inside = value.startswith(display(directory) + "/") and ".." not in value.split("/")
        if not inside:
            raise ContinuationRefused(f"context.{field}", f"{value!r} is outside the sweep's folder {display(directory)}")
        return
    if not is_remote(value) and Path(directory).resolve() in Path(value).resolve().parents:
        return
    try:
        check_data_path(value, settings)
    except SpecError as err:
        raise ContinuationRefused(f"context.{field}", f"{value!r} is neither in the sweep's folder "
                                                     f"{display(directory)} nor allowed: {err.message}") from None


def _check_unclaimed(context: SweepContext, round_index: int, owner: AirflowRun) -> None:
    """Round `round_index` is free, or taken by this very Airflow run (a retry of its prepare)."""
    claim = claim_file(context, round_index)
    if claim.exists():
        try:
            taken = AirflowRun.model_validate(json.loads(claim.read_text()))
        except (ValueError, ValidationError):
            taken = None
        if taken != owner:
            raise ContinuationRefused("round", f"round {round_index} of sweep {context.experiment}/{context.run_id} "
                                               f"was already run by Airflow run {taken}; a round runs once")
        return
    from mlfleet.sweep.propose import round_file

    if round_file(context, round_index).exists():
        raise ContinuationRefused("round", f"round {round_index} of sweep {context.experiment}/{context.run_id} "
                                           "is already recorded; a round runs once")
