"""Cross-validate trials exactly as scikit-learn's `cross_validate` would, folds in parallel.

Each (trial, fold) pair is one unit of work for a joblib process pool, so a batch of trials
keeps every core busy; a fold that raises marks its trial failed without stopping the rest.
The longest trials (by the planner's `predicted_seconds`) start first, so the batch does not end
with one worker fitting a slow trial while the others idle.

With `prune` (the spec's `search.prune`) folds run in waves: fold 0 of every trial, then fold 1
of the trials still in, and so on; after each wave from `min_folds` on, Optuna's WilcoxonPruner
stops the trials clearly worse than the wave's leader. See `cross_validate_trials`.

The pool is joblib's (loky: its workers are new interpreters, in the training process's process
group, so the local backend stops them with it), one per batch for all its waves, with joblib's
automatic batching of short fits. A worker dies with the training process that started it.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

# What one fit of one fold gives: score (None if it failed), seconds, error line (None if it worked).
FoldResult = tuple[float | None, float, str | None]


@dataclass(frozen=True)
class CVConfig:
    task: str
    metric: str
    folds: int
    seed: int

    def splitter(self) -> Any:
        from sklearn.model_selection import KFold, StratifiedKFold

        cls = StratifiedKFold if self.task == "classification" else KFold
        return cls(n_splits=self.folds, shuffle=True, random_state=self.seed)


@dataclass(frozen=True)
class Pruning:
    """The spec's `search.prune`: stop a trial after `min_folds`+ folds when Wilcoxon p < `p_value`."""

    min_folds: int = 2
    p_value: float = 0.1


def _fit_fold(trial: dict[str, Any], fold: int, train: np.ndarray, test: np.ndarray, X: Any, y: Any,
              config: CVConfig, n_classes: int, owner: int | None = None) -> tuple[str, int, float | None, float, str | None]:
    """One fit of one fold. `owner`: the process that runs the batch; in a pool worker, the worker dies with it."""
    if owner is not None and owner != os.getpid():
        _die_with(owner)  # first: the imports below take seconds in a new worker
    from sklearn.metrics import get_scorer

    from mlfleet.training.zoo import build_estimator

    started = time.perf_counter()
    try:
        estimator = build_estimator(trial["model"], trial["params"], task=config.task, seed=config.seed, n_classes=n_classes)
        estimator.fit(X[train], y[train])
        score = float(get_scorer(config.metric)(estimator, X[test], y[test]))
        if not np.isfinite(score):
            raise ValueError(f"scorer {config.metric} returned {score}")
        return trial["trial_id"], fold, score, time.perf_counter() - started, None
    except Exception as err:  # noqa: BLE001 - a trial's crash is data, recorded on its row
        line = traceback.format_exception_only(type(err), err)[-1].strip()
        return trial["trial_id"], fold, None, time.perf_counter() - started, line


# The owners this process (a pool worker) has already arranged to die with.
_OWNERS: set[int] = set()


def _die_with(owner: int) -> None:
    """In a pool worker, once: the kernel kills it when `owner` (its parent, the training process) dies.

    Otherwise a worker of a training process killed alone (its parent-death signal, its deadline)
    would fit on until it next asks for work, beside the batch's retry.
    """
    if owner in _OWNERS:
        return
    from mlfleet.training.entrypoint import die_with_parent

    die_with_parent()
    _OWNERS.add(owner)
    if os.getppid() != owner:  # it died before the line above took effect
        os._exit(1)


def longest_first(trials: list[dict[str, Any]], *, folds: int) -> list[dict[str, Any]]:
    """Trials by predicted seconds per fold, longest first (ties and no predictions: input order).

    A trial without a usable `predicted_seconds` (old jobs, or a planner that could not predict
    it) counts as the batch's average prediction.
    """
    per_fold = [_predicted(t) for t in trials]
    known = [p for p in per_fold if p is not None]
    if not known:
        return list(trials)
    average = sum(known) / len(known)
    keyed = [((average if p is None else p) / folds, i) for i, p in enumerate(per_fold)]
    return [trials[i] for _, i in sorted(keyed, key=lambda pair: (-pair[0], pair[1]))]


# What a new process pool costs before its first fit: its workers start Python and import
# scikit-learn, which takes seconds, several times what a few short fits take on a warm pool
# (docs/design-figures.md, "Why the settings").
POOL_START_SECONDS = 2.5


def pool_size(trials: list[dict[str, Any]], *, workers: int, pairs: int) -> int:
    """How many worker processes to fit these trials with; 1 means in this process, no pool.

    A pool of W workers finishes T core-seconds of fits in about T/W + POOL_START_SECONDS, so it
    only pays when T > POOL_START_SECONDS * W / (W - 1): a bayes round of a few short trials runs
    faster in this process. Without a prediction for every trial the pool is used.
    """
    n_jobs = max(1, min(workers, pairs))
    predicted = [_predicted(t) for t in trials]
    if n_jobs == 1 or any(p is None for p in predicted):
        return n_jobs
    return 1 if sum(predicted) <= POOL_START_SECONDS * n_jobs / (n_jobs - 1) else n_jobs


def _predicted(trial: dict[str, Any]) -> float | None:
    value = trial.get("predicted_seconds")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def cross_validate_trials(
    trials: list[dict[str, Any]], X: np.ndarray, y: np.ndarray, config: CVConfig, *, workers: int,
    on_trial_done: Callable[[dict[str, Any]], Any] | None = None, prune: Pruning | None = None,
) -> list[dict[str, Any]]:
    """Score every trial on every fold (or, with `prune`, until it is clearly beaten); one row per trial, input order.

    Pruning decides on the folds every remaining trial has run (never on timing or worker count,
    so the rows are the same with 1 worker or 64). A pruned row has `pruned: true`, the scores of
    the folds it ran and their mean; it keeps status "success". Its mean is below the batch's best
    complete mean by construction: the pruner never stops a trial whose mean is not below the
    leader's on the same folds, and a pruned trial whose mean still ends at or above the best
    complete trial's mean gets its remaining folds run. So the batch's best is always a trial
    scored on every fold.

    The (trial, fold) fits go to one joblib pool for the whole call (`pool_size` workers; with one,
    they run in this process), in batches joblib sizes itself (`batch_size="auto"`), so short fits
    travel many to a round trip.
    """
    from joblib import Parallel, delayed

    # Bayes rounds can propose the same params twice (same trial id): fit each id once, or
    # the two copies' folds would mix.
    unique = list({t["trial_id"]: t for t in trials}.values())
    if not unique:
        return []
    splits = list(config.splitter().split(X, y))
    n_classes = len(np.unique(y)) if config.task == "classification" else 0
    order = longest_first(unique, folds=len(splits))
    done: dict[str, dict[int, FoldResult]] = {t["trial_id"]: {} for t in unique}
    results: dict[str, dict[str, Any]] = {}

    def finish(trial: dict[str, Any], *, folds_run: int, pruned: bool = False) -> None:
        key = trial["trial_id"]
        results[key] = summarize(trial, [(k, *done[key][k]) for k in range(folds_run)], n_folds=len(splits),
                                 pruned=pruned)
        if on_trial_done:
            on_trial_done(results[key])

    n_jobs = pool_size(unique, workers=workers, pairs=len(unique) * len(splits))
    owner = os.getpid()
    with Parallel(n_jobs=n_jobs, backend="loky", batch_size="auto", return_as="generator_unordered") as parallel:

        def run(pairs: list[tuple[dict[str, Any], int]]) -> Iterator[str]:
            """Fit these (trial, fold) pairs, in this order; yield each trial id as a fold of it ends."""
            jobs = [delayed(_fit_fold)(t, k, *splits[k], X, y, config, n_classes, owner) for t, k in pairs]
            for key, fold, score, seconds, error in parallel(jobs) if jobs else ():
                done[key][fold] = (score, seconds, error)
                yield key

        if prune is None:
            by_id = {t["trial_id"]: t for t in unique}
            for key in run([(t, k) for t in order for k in range(len(splits))]):
                if len(done[key]) == len(splits):
                    finish(by_id[key], folds_run=len(splits))
        else:
            _run_in_waves(order, folds=len(splits), workers=n_jobs, prune=prune, done=done, run=run,
                          finish=finish, results=results)
    return [results[t["trial_id"]] for t in trials]


def _run_in_waves(order: list[dict[str, Any]], *, folds: int, workers: int, prune: Pruning,
                  done: dict[str, dict[int, FoldResult]], run: Callable[[list[tuple[dict[str, Any], int]]], Iterator[str]],
                  finish: Callable[..., None], results: dict[str, dict[str, Any]]) -> None:
    active = list(order)
    stopped: list[tuple[dict[str, Any], int]] = []  # (trial, folds it ran), in run order
    for k in range(folds):
        wave = [(t, k) for t in active if k not in done[t["trial_id"]]]
        # A wave narrower than the pool fills the idle workers with later folds of the trials still
        # in: free in wall time, and used only if the trial is still in when its turn comes.
        ahead = [(t, j) for j in range(k + 1, folds) for t in active if j not in done[t["trial_id"]]]
        for _ in run(wave + ahead[:max(0, workers - len(wave))]):
            pass
        failed = [t for t in active if done[t["trial_id"]][k][2] is not None]
        for trial in failed:
            finish(trial, folds_run=k + 1)  # failed is final: its later folds cannot change the row
        active = [t for t in active if done[t["trial_id"]][k][2] is None]
        if prune.min_folds <= k + 1 < folds and len(active) > 1:
            beaten = _beaten(active, done, folds_run=k + 1, p_value=prune.p_value)
            stopped += [(t, k + 1) for t in active if t["trial_id"] in beaten]
            active = [t for t in active if t["trial_id"] not in beaten]
    for trial in active:
        finish(trial, folds_run=folds)

    # The leader a trial lost to can fall later (its last folds worse, or a failed fold): a
    # stopped trial not below the best complete mean runs its remaining folds.
    complete = [r["mean_score"] for r in results.values() if r["status"] == "success"]
    best = max(complete, default=None)
    resume = [t for t, n in stopped if best is None or _mean(done, t, n) >= best]
    for _ in run([(t, j) for t in resume for j in range(folds) if j not in done[t["trial_id"]]]):
        pass
    resumed = {t["trial_id"] for t in resume}
    for trial, folds_run in stopped:
        if trial["trial_id"] in resumed:
            finish(trial, folds_run=folds)
        else:
            finish(trial, folds_run=folds_run, pruned=True)


def _mean(done: dict[str, dict[int, FoldResult]], trial: dict[str, Any], folds_run: int) -> float:
    return float(np.mean([done[trial["trial_id"]][k][0] for k in range(folds_run)]))


def _beaten(active: list[dict[str, Any]], done: dict[str, dict[int, FoldResult]], *, folds_run: int,
            p_value: float) -> set[str]:
    """Ids of the trials Optuna's WilcoxonPruner would stop against the leader on folds 0..folds_run-1.

    The leader (best mean on those folds; ties: run order) is the one complete trial of a throwaway
    in-memory study, so it is what the pruner compares each other trial with; the pruner never
    stops a trial whose mean on those folds is not below the leader's.
    """
    import optuna

    def scores(trial: dict[str, Any]) -> dict[int, float]:
        return {k: float(done[trial["trial_id"]][k][0]) for k in range(folds_run)}  # type: ignore[arg-type]

    leader = max(active, key=lambda t: _mean(done, t, folds_run))
    with _quiet_optuna():
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=optuna.pruners.WilcoxonPruner(p_threshold=p_value, n_startup_steps=folds_run),
        )
    study.add_trial(optuna.trial.create_trial(value=_mean(done, leader, folds_run), intermediate_values=scores(leader)))
    beaten: set[str] = set()
    for trial in active:
        if trial is leader:
            continue
        candidate = study.ask()
        for k, score in scores(trial).items():
            candidate.report(score, step=k)
        if candidate.should_prune():
            beaten.add(trial["trial_id"])
    return beaten


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """No "A new study created in memory" line per wave and no experimental-feature warning."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def summarize(trial: dict[str, Any], folds: list[tuple[int, float | None, float, str | None]], *,
              n_folds: int | None = None, pruned: bool = False) -> dict[str, Any]:
    """One leaderboard row from a trial's (fold, score, seconds, error) tuples, in fold order.

    `fold_seconds` has one entry per fold of the CV (`n_folds`, default: the folds given), None
    where the fold did not run; `fit_seconds` is their sum.
    """
    fold_seconds: list[float | None] = [None] * (len(folds) if n_folds is None else n_folds)
    for k, _, seconds, _ in folds:
        fold_seconds[k] = round(seconds, 4)
    errors = [e for _, _, _, e in folds if e]
    fit_seconds = round(sum(s for s in fold_seconds if s is not None), 4)
    row = {"trial_id": trial["trial_id"], "model": trial["model"], "params": trial["params"],
           "fit_seconds": fit_seconds, "fold_seconds": fold_seconds, "pruned": pruned}
    if errors:
        return {**row, "fold_scores": None, "mean_score": None, "std_score": None, "status": "failed", "error": errors[0]}
    scores = [float(s) for _, s, _, _ in folds]
    return {**row, "fold_scores": scores, "mean_score": float(np.mean(scores)), "std_score": float(np.std(scores)),
            "status": "success", "error": None}
