"""The one training entrypoint: SageMaker's container contract, run locally, in pods and on SageMaker.

Layout under the root (`/opt/ml` in a container, a per-batch directory locally):

    input/config/hyperparameters.json   task, target, metric, cv_folds, cv_seed, and with pruning on
                                         prune_min_folds, prune_p_value (strings, as SageMaker passes them)
    input/data/config/job.json           the batch's trials and the feature columns (a channel: SageMaker
                                         caps a hyperparameter value at 2,500 characters, a batch is larger)
    input/data/train/                    the training set (Parquet or CSV)
    model/results.json                   one result row per trial (the leaderboard rows)
    checkpoints/<trial_id>.json          a finished trial, so a restarted job skips it
    output/failure                       why the job failed, when it did

Metrics go to stdout as `trial=<id> fold=<k> score=<v>` and `trial=<id> mean_score=<v>`, the
form a SageMaker MetricDefinition regex reads. Nothing here imports Airflow.

Three places, one code path: the local backend stages the layout itself; SageMaker stages it from
the CreateTrainingJob request; a Kubernetes pod passes `--hyperparameters`, `--channel` and
`--output` so the entrypoint stages it from S3, pushes checkpoints and results back, and with
`--xcom` writes the result to KubernetesPodOperator's XCom sidecar file.

A local batch's process also gets the lifetime a SageMaker job or a pod has from its platform,
through two environment variables the local backend sets (a job or a pod sets neither):

    MLFLEET_TRAINER_PARENT_PID      die when this process (the task that started it) dies
                                    (Linux `PR_SET_PDEATHSIG`); exit at once if it is gone already
    MLFLEET_TRAINER_DEADLINE_SECONDS  end with SIGALRM after this many seconds (the spec's
                                    `budget.timeout_minutes`), whether or not anyone waits for it

`main` arms both before it does anything else, so they hold from the process's first line of work.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlfleet.storage import write_json_atomic

METRIC_DEFINITIONS = [
    {"Name": "fold_score", "Regex": r"fold=\d+ score=([-+0-9.eE]+)"},
    {"Name": "mean_score", "Regex": r"mean_score=([-+0-9.eE]+)"},
]
XCOM_SIDECAR = "/airflow/xcom/return.json"
PARENT_PID_ENV = "MLFLEET_TRAINER_PARENT_PID"
DEADLINE_ENV = "MLFLEET_TRAINER_DEADLINE_SECONDS"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def lifetime_env(*, parent_pid: int, deadline_seconds: int) -> dict[str, str]:
    """The variables that give a training process its caller's lifetime and its own deadline (see `arm_lifetime`)."""
    return {PARENT_PID_ENV: str(parent_pid), DEADLINE_ENV: str(max(1, deadline_seconds))}


def die_with_parent() -> None:
    """Linux: the kernel kills this process with SIGKILL when its parent dies (elsewhere: nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def arm_lifetime(environ: Mapping[str, str] = os.environ) -> None:
    """Death with the parent named in MLFLEET_TRAINER_PARENT_PID, an alarm at MLFLEET_TRAINER_DEADLINE_SECONDS.

    Armed in the process itself, so no `preexec_fn` (unsafe in a caller with threads) and no second
    interpreter are needed. SIGALRM's default action ends the process in the kernel, whatever
    Python or a C fit is doing; the caller reads it from the exit status.
    """
    parent = environ.get(PARENT_PID_ENV)
    if parent:
        die_with_parent()
        if os.getppid() != int(parent):  # the parent died before the line above took effect
            os._exit(1)
    deadline = environ.get(DEADLINE_ENV)
    if deadline:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(max(1, int(deadline)))


def hyperparameters_of(job: dict[str, Any]) -> dict[str, str]:
    """The job's scalar settings as SageMaker hyperparameters (string values)."""
    hyperparameters = {
        "task": job["task"],
        "target": job["target"],
        "metric": job["metric"],
        "cv_folds": str(job["cv"]["folds"]),
        "cv_seed": str(job["cv"]["seed"]),
    }
    if job.get("prune"):  # only when on: a job without pruning keeps the request it always had
        hyperparameters["prune_min_folds"] = str(job["prune"]["min_folds"])
        hyperparameters["prune_p_value"] = repr(float(job["prune"]["p_value"]))
    return hyperparameters


def config_of(job: dict[str, Any]) -> dict[str, Any]:
    """What travels in the `config` channel: too large for a hyperparameter value."""
    return {"features": job["features"], "trials": job["trials"]}


def stage_job(root: Path, job: dict[str, Any]) -> None:
    """Lay a job out as SageMaker would: scalar hyperparameters, and trials + features as the config channel."""
    write_json_atomic(root / "input/config/hyperparameters.json", hyperparameters_of(job))
    write_json_atomic(root / "input/data/config/job.json", config_of(job))


def read_job(root: Path) -> dict[str, Any]:
    """The job `stage_job` laid out (hyperparameters arrive as strings; jobs from before pruning lack its keys)."""
    hyperparameters = json.loads((root / "input/config/hyperparameters.json").read_text())
    config = json.loads((root / "input/data/config/job.json").read_text())
    prune = None
    if "prune_min_folds" in hyperparameters:
        prune = {"min_folds": int(hyperparameters["prune_min_folds"]),
                 "p_value": float(hyperparameters.get("prune_p_value", "0.1"))}
    return {
        "task": hyperparameters["task"],
        "target": hyperparameters["target"],
        "metric": hyperparameters["metric"],
        "cv": {"folds": int(hyperparameters["cv_folds"]), "seed": int(hyperparameters["cv_seed"])},
        "prune": prune,
        "features": config["features"],
        "trials": config["trials"],
    }


def load_channel(channel: Path) -> Any:
    import pandas as pd

    files = sorted(p for p in channel.rglob("*") if p.is_file() and p.suffix in (".parquet", ".csv"))
    if not files:
        raise FileNotFoundError(f"input channel {channel} holds no .parquet or .csv file")
    frames = [pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p) for p in files]
    return pd.concat(frames, ignore_index=True)


def load_arrays(channel: Path, *, features: list[str], target: str) -> tuple[Any, Any]:
    """The training set as the (X, y) arrays every fit takes."""
    frame = load_channel(channel)
    return frame[features].to_numpy(dtype="float64"), frame[target].to_numpy()


def run(root: Path, *, workers: int | None = None, on_checkpoint: Any = None) -> list[dict[str, Any]]:
    """Run every trial of the batch not already checkpointed; return all result rows."""
    from mlfleet.training.cv import CVConfig, Pruning, cross_validate_trials

    job = read_job(root)
    config = CVConfig(task=job["task"], metric=job["metric"], folds=job["cv"]["folds"], seed=job["cv"]["seed"])
    prune = Pruning(**job["prune"]) if job.get("prune") else None
    checkpoints = root / "checkpoints"
    done = {p.stem: json.loads(p.read_text()) for p in checkpoints.glob("*.json")} if checkpoints.is_dir() else {}
    todo = [t for t in job["trials"] if t["trial_id"] not in done]

    def record(row: dict[str, Any]) -> None:
        for k, score in enumerate(row["fold_scores"] or []):
            print(f"trial={row['trial_id']} fold={k} score={score:.10g}", flush=True)
        if row["status"] == "success":
            pruned = f" pruned_after_folds={len(row['fold_scores'])}" if row.get("pruned") else ""
            print(f"trial={row['trial_id']} mean_score={row['mean_score']:.10g}{pruned}", flush=True)
        else:
            print(f"trial={row['trial_id']} status=failed error={row['error']}", flush=True)
        write_json_atomic(checkpoints / f"{row['trial_id']}.json", row)
        if on_checkpoint is not None:
            on_checkpoint(checkpoints / f"{row['trial_id']}.json")

    workers = workers or int(os.environ.get("MLFLEET_WORKERS", "0")) or os.cpu_count() or 1
    X, y = load_arrays(root / "input/data/train", features=job["features"], target=job["target"])
    cross_validate_trials(todo, X, y, config, workers=workers, on_trial_done=record, prune=prune)
    rows = [json.loads((checkpoints / f"{t['trial_id']}.json").read_text()) for t in job["trials"]]
    write_json_atomic(root / "model/results.json", rows)
    return rows


def stage_from_object_store(root: Path, *, hyperparameters: str | None, channels: list[str], output: str | None) -> None:
    """A pod's staging: what SageMaker does before it starts the container, done by the container."""
    from mlfleet.training import object_io

    if hyperparameters is not None:
        values = json.loads(hyperparameters)
        if not isinstance(values, dict):
            raise ValueError(f"--hyperparameters must be a JSON object, got {hyperparameters!r}")
        write_json_atomic(root / "input/config/hyperparameters.json", {k: str(v) for k, v in values.items()})
    for channel in channels:
        name, sep, uri = channel.partition("=")
        if not sep or not name:
            raise ValueError(f"--channel takes NAME=s3://bucket/prefix, got {channel!r}")
        if not object_io.download_prefix(uri, root / "input/data" / name):
            raise FileNotFoundError(f"input channel {name}: nothing under {uri}")
    if output:
        # Trials a previous pod of this batch finished (evicted, rescheduled) are not run again.
        object_io.download_prefix(f"{output.rstrip('/')}/checkpoints/", root / "checkpoints")


def main(argv: list[str] | None = None) -> int:
    arm_lifetime()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="train", help="SageMaker passes 'train'")
    parser.add_argument("--root", default=os.environ.get("MLFLEET_SM_ROOT", "/opt/ml"))
    parser.add_argument("--hyperparameters", help="pods: the hyperparameters JSON SageMaker would write")
    parser.add_argument("--channel", action="append", default=[], help="pods: NAME=s3://... input channel to download")
    parser.add_argument("--output", help="pods: s3://... prefix for checkpoints and results.json")
    parser.add_argument("--xcom", action="store_true", help="also write the result to the KPO XCom sidecar file")
    args = parser.parse_args(argv)
    root = Path(args.root)
    push = None
    if args.output:
        from mlfleet.training import object_io

        output = args.output.rstrip("/")

        def push(path: Path) -> None:
            object_io.upload_file(path, f"{output}/checkpoints/{path.name}")
    try:
        stage_from_object_store(root, hyperparameters=args.hyperparameters, channels=args.channel, output=args.output)
        rows = run(root, on_checkpoint=push)
        if args.output:
            object_io.upload_file(root / "model/results.json", f"{output}/results.json")
    except Exception as err:  # noqa: BLE001 - the failure file is the contract
        message = "".join(traceback.format_exception_only(type(err), err)).strip()
        (root / "output").mkdir(parents=True, exist_ok=True)
        (root / "output/failure").write_text(message + "\n\n" + traceback.format_exc())
        print(message, file=sys.stderr)
        return 1
    if args.xcom:
        summary: dict[str, Any] = {"results": rows}
        if args.output:
            summary["results_uri"] = f"{output}/results.json"
        write_json_atomic(Path(os.environ.get("MLFLEET_XCOM_FILE", XCOM_SIDECAR)), summary)
    return 0


if __name__ == "__main__":
    from mlfleet.shutdown import skip_final_collections

    skip_final_collections()
    sys.exit(main())
