"""A sweep's secret: the random token prepare writes into its folder, and what is signed with it.

Two things a user who may trigger the DAG must not be able to make up are derived from it: the
proof in a continuation run's conf (mlfleet.sweep.continuation) and the tag in that run's id
(`round_run_id`). The token lives in the sweep's folder with mode 0600, so only the workers (and
the results UI, which runs beside them) can compute either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from mlfleet.storage import Location, write_private_atomic
from mlfleet.sweep.rounds import continuation_run_id

TOKEN_FILE = ".continuation_token"  # in the sweep's folder, mode 0600
RUN_ID_TAG_LENGTH = 16  # hex digits of the run-id tag: 64 bits


class MissingToken(LookupError):
    """The sweep has no token: it was prepared before continuations had to prove themselves."""


def write_token(results_path: Location) -> None:
    """The sweep's secret, written once by prepare (a retried prepare keeps it)."""
    path = results_path / TOKEN_FILE
    if not path.exists():
        write_private_atomic(path, secrets.token_urlsafe(32))


def sign(results_path: Location, *parts: str) -> str:
    """HMAC-SHA256 (hex) of `parts`, one per line, under the sweep's token; MissingToken without one."""
    path = results_path / TOKEN_FILE
    if not path.exists():
        raise MissingToken(str(path))
    return hmac.new(path.read_text().strip().encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def round_run_id(results_path: Location, *, experiment: str, run_id: str, round_index: int) -> str:
    """The Airflow run id of the sweep's round `round_index` (>= 1): the same on every retry, and
    not guessable without the token.

    A run id anyone could compute (experiment, sweep run id, round) lets a user who may trigger
    the DAG create that run first, with a conf that is refused: the real round's trigger then
    finds the id taken and the sweep stalls. The tag makes the id the sweep's own.
    """
    tag = sign(results_path, "run-id", experiment, run_id, str(round_index))[:RUN_ID_TAG_LENGTH]
    return f"{continuation_run_id(experiment, run_id, round_index)}__{tag}"
