"""MLflow model registry: the best model of a sweep as a registered version, its champion/challenger
aliases, and promotion as a compare-and-set (`promote_champion`).

Versions carry `mlfleet.*` tags (the sweep that registered them, its score), and every writer
looks them up first, so a retried Airflow task finds the version an earlier attempt registered
instead of registering a second. Runs and experiments are `mlfleet.results.tracking`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlfleet.results.tracking import ROLE_TAG, SWEEP_TAG, tracking_client, find_runs, quoted, configure, experiment_id

log = logging.getLogger(__name__)

SCORE_TAG = "mlfleet.score"
CHAMPION, CHALLENGER = "champion", "challenger"
# On a version: "pending" from its registration until its first alias (champion or challenger) is set, then that alias.
FIRST_ALIAS_TAG = "mlfleet.first_alias"
# On a version: the champion it was compared with, written just before `promote_champion` moves the alias to it.
PROMOTED_FROM_TAG = "mlfleet.promoted_from"
_DISTRIBUTIONS = {"sklearn": "scikit-learn"}  # import name -> PyPI name, where they differ


def _pip_requirements(model: Any) -> list[str]:
    """Pin the packages the model's objects come from. MLflow's own inference re-imports the model
    in a subprocess (~15 s) and lists whatever that interpreter loaded (torch for a logistic regression)."""
    from importlib.metadata import PackageNotFoundError, version

    objects = [model, *getattr(model, "__dict__", {}).values()]
    if hasattr(model, "get_params"):
        objects += list(model.get_params(deep=True).values())
    # A fitted attribute brings its package in (the project's MLP keeps a torch network in `network_`).
    # mlfleet itself is not on PyPI: an MLP's loader needs the project installed anyway.
    roots = {type(o).__module__.split(".")[0] for o in objects} | {"sklearn", "cloudpickle"}
    pins = []
    for root in sorted(roots - {"builtins", "mlfleet"}):
        name = _DISTRIBUTIONS.get(root, root)
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def _version_info(client: Any, name: str, version: Any) -> dict[str, Any]:
    mv = client.get_model_version(name, str(version))
    alias = next((a for a in (CHAMPION, CHALLENGER, *mv.aliases) if a in mv.aliases), None)
    return {"name": name, "version": str(mv.version), "alias": alias, "model_uri": f"models:/{name}/{mv.version}",
            "run_id": mv.run_id, "tags": dict(mv.tags), "aliases": list(mv.aliases)}


def _versions_of_sweep(client: Any, name: str, run_id: str) -> list[Any]:
    query = f"name = {quoted(name)} and tags.`{SWEEP_TAG}` = {quoted(run_id)}"
    return sorted(client.search_model_versions(query), key=lambda mv: int(mv.version))


def register_model(
    *, settings: Any, experiment: str, run_id: str, model: Any, X_sample: Any, reference_statistics: dict[str, Any],
    tags: dict[str, str], score: float,
) -> dict[str, Any]:
    """Log + register the sweep's best model, with its training frame's statistics (JSON, see
    `mlfleet.drift.sketch.of_frame`) as its drift baseline; the first version of a name becomes
    `champion`, later ones `challenger` (promotion is the retraining DAG's decision). Once per sweep run_id.

    A version is registered with FIRST_ALIAS_TAG "pending", so a retry of an attempt that died
    between registering it and setting its alias finds it (by the sweep's tag) and sets the alias,
    instead of registering a second version or leaving a first model without `champion`."""
    import mlflow
    import mlflow.sklearn

    from mlfleet.results.reference import log_reference_statistics

    client = tracking_client(settings)
    existing = _versions_of_sweep(client, experiment, run_id)
    if existing:
        if dict(existing[0].tags).get(FIRST_ALIAS_TAG) == "pending":
            _set_first_alias(settings, client, experiment, existing[0].version)
        return _version_info(client, experiment, existing[0].version)
    exp_id = experiment_id(settings, experiment)
    earlier = find_runs(client, exp_id, run_id, "best")  # logged, then the task died before registering
    new_run = {"experiment_id": exp_id, "run_name": f"{run_id}-best", "tags": {SWEEP_TAG: run_id, ROLE_TAG: "best"}}
    run_kwargs = {"run_id": earlier[0].info.run_id} if earlier else new_run
    with mlflow.start_run(**run_kwargs):
        log_reference_statistics(reference_statistics)  # statistics, not rows: the drift check reads these
        mlflow.log_metric("score", float(score))
        # cloudpickle, not MLflow's default skops: skops cannot rebuild the MLP's torch tensors, its
        # import walks all of scikit-learn (10+ s, in every loader too), and the types it trusts on load
        # are read from the model's own MLmodel file, so it adds no safety for our own registry.
        info = mlflow.sklearn.log_model(model, name="model", input_example=X_sample,
                                        serialization_format="cloudpickle", pip_requirements=_pip_requirements(model))
    version_tags = {**{k: str(v) for k, v in tags.items()}, SWEEP_TAG: run_id, SCORE_TAG: repr(float(score)),
                    FIRST_ALIAS_TAG: "pending"}
    version = mlflow.register_model(info.model_uri, experiment, tags=version_tags).version
    _set_first_alias(settings, client, experiment, version)
    return _version_info(client, experiment, version)


def _set_first_alias(settings: Any, client: Any, name: str, version: str | int) -> None:
    """`champion` for a model's first version, `challenger` for a later one; then FIRST_ALIAS_TAG records it.

    An attempt that died after the alias but before the tag left the version holding it: kept as it is."""
    with alias_lock(settings):
        aliases = dict(client.get_registered_model(name).aliases)
        held = [alias for alias, holder in aliases.items() if str(holder) == str(version)]
        if held:
            alias = CHAMPION if CHAMPION in held else held[0]
        else:
            alias = CHAMPION if CHAMPION not in aliases else CHALLENGER
            client.set_registered_model_alias(name, alias, str(version))
        client.set_model_version_tag(name, str(version), FIRST_ALIAS_TAG, alias)


@contextlib.contextmanager
def alias_lock(settings: Any) -> Iterator[None]:
    """One alias writer at a time where every writer is on this machine: a local SQLite store.

    MLflow's registry has no compare-and-set on aliases, so a read-then-move is a race between
    two writers; on the embedded store a lock file beside the database makes it none. A tracking
    server has no such lock to take (see `promote_champion` for what remains there).
    """
    uri = settings.tracking_uri
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.aliases.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def version_of_sweep(settings: Any, name: str, run_id: str) -> dict[str, Any] | None:
    """The version of `name` that sweep (or retrain) `run_id` registered, found by its tag; None before it has."""
    client = tracking_client(settings)
    found = _versions_of_sweep(client, name, run_id)
    return _version_info(client, name, found[0].version) if found else None


def alias_holder(settings: Any, name: str, alias: str) -> str | None:
    """The version that holds `alias` of registered model `name` now, or None."""
    registered = _registered(tracking_client(settings), name)
    if registered is None or alias not in registered.aliases:
        return None
    return str(registered.aliases[alias])


def promote_champion(settings: Any, name: str, *, version: str | int, compared_with: str | int) -> dict[str, Any]:
    """Move `champion` to `version` only while it is still on `compared_with`, the version it beat.

    A compare-and-set, as near as MLflow allows: the holder is read right before the move and
    again right after it. Returns {"outcome", "champion"} (who holds it afterwards):
    "promoted" (also when `version` already holds it because an earlier attempt of this same
    promotion moved it, as PROMOTED_FROM_TAG shows); "stale" when another version holds it now
    (another retrain promoted meanwhile, or someone moved it), and nothing moves; "superseded" when
    another writer moved it again between this move and the re-read: logged as an error, and not
    undone (moving it back would undo their move, which came last).

    What remains: MLflow offers no atomic compare-and-set. On a local SQLite store every writer
    takes `alias_lock`, which closes the race. Against a tracking server two promotions that both
    read the old champion before either moves it can both move it, and the later wins without
    having been compared with the earlier; the window is one read and one write (milliseconds), and
    the earlier one records "superseded".
    """
    version, compared_with = str(version), str(compared_with)
    client = tracking_client(settings)
    with alias_lock(settings):
        before = alias_holder(settings, name, CHAMPION)
        if before == version:
            tags = dict(client.get_model_version(name, version).tags)
            if tags.get(PROMOTED_FROM_TAG) == compared_with:
                return {"outcome": "promoted", "champion": version}
            return {"outcome": "stale", "champion": before}  # it got there by another way than this promotion
        if before != compared_with:
            return {"outcome": "stale", "champion": before}
        client.set_model_version_tag(name, version, PROMOTED_FROM_TAG, compared_with)
        client.set_registered_model_alias(name, CHAMPION, version)
        after = alias_holder(settings, name, CHAMPION)
    if after != version:
        log.error("champion of %s moved to v%s right after v%s was promoted over v%s: another writer moved it "
                  "without the registry's lock; left as it is", name, after, version, compared_with)
        return {"outcome": "superseded", "champion": after}
    return {"outcome": "promoted", "champion": version}


def _registered(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def champion(settings: Any, name: str) -> dict[str, Any] | None:
    """The `champion` version of registered model `name`, or None while there is none."""
    client = tracking_client(settings)
    registered = _registered(client, name)
    if registered is None or CHAMPION not in registered.aliases:
        return None
    info = _version_info(client, name, registered.aliases[CHAMPION])
    return {**info, "alias": CHAMPION, "model_uri": f"models:/{name}@{CHAMPION}"}


def load_model(settings: Any, model_uri: str) -> Any:
    import mlflow.sklearn

    configure(settings)
    return mlflow.sklearn.load_model(model_uri)


def set_alias(settings: Any, name: str, alias: str, version: str | int) -> None:
    tracking_client(settings).set_registered_model_alias(name, alias, str(version))


def record_version_tags(settings: Any, name: str, version: str | int, tags: dict[str, Any]) -> None:
    client = tracking_client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def list_champions(settings: Any) -> list[str]:
    """Names of the registered models that have a champion: the ones the drift DAG watches."""
    client = tracking_client(settings)
    names: list[str] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        names += [rm.name for rm in page if CHAMPION in rm.aliases]
        token = page.token
        if not token:
            return sorted(names)


def registered_models(settings: Any) -> list[dict[str, Any]]:
    """Every registered model with its aliases (name -> version), for the models page."""
    client = tracking_client(settings)
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        found += [{"name": rm.name, "aliases": dict(rm.aliases)} for rm in page]
        token = page.token
        if not token:
            return sorted(found, key=lambda m: m["name"])


def registered_versions(settings: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Every model version mlfleet registered ({"name", "version", "sweep_run_id", "tags"}), of one
    model or of all, by name then version: `register_model` tags each with the sweep that made it
    (SWEEP_TAG), so a model someone else registered in the same MLflow store is not among them."""
    client = tracking_client(settings)
    query = f"tags.`{SWEEP_TAG}` LIKE '%'" + (f" and name = {quoted(name)}" if name is not None else "")
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_model_versions(query, max_results=10_000, page_token=token)
        found += [{"name": mv.name, "version": str(mv.version), "sweep_run_id": dict(mv.tags).get(SWEEP_TAG),
                   "tags": dict(mv.tags)} for mv in page]
        token = page.token
        if not token:
            return sorted(found, key=lambda v: (v["name"], int(v["version"])))


def version_history(settings: Any, name: str) -> list[dict[str, Any]]:
    """Every version of a registered model, newest first, with its aliases, tags and creation time."""
    client = tracking_client(settings)
    registered = _registered(client, name)
    if registered is None:
        return []
    # Searched versions come without their aliases: the registered model holds them (alias -> version).
    aliases: dict[str, list[str]] = {}
    for alias, version in sorted(dict(registered.aliases).items()):
        aliases.setdefault(str(version), []).append(alias)
    versions = client.search_model_versions(f"name = {quoted(name)}")
    return [{"version": str(mv.version), "aliases": aliases.get(str(mv.version), []), "tags": dict(mv.tags),
             "run_id": mv.run_id, "created_ms": int(mv.creation_timestamp or 0)}
            for mv in sorted(versions, key=lambda mv: int(mv.version), reverse=True)]
