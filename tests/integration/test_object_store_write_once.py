"""`write_json_once` in the object store is a conditional PUT: of writers racing for one key, one wins.

A round's claim and a sweep folder's owner are taken this way (mlfleet.sweep.continuation,
mlfleet.sweep.ids); a check-then-write would let two runs both believe they took it.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any



def _key(aws: Any) -> Any:
    from mlfleet.backends.object_store import location

    return location(f"s3://{aws.bucket}/write-once/{uuid.uuid4().hex}/rounds/001.claim", conn_id="aws_default")


def test_the_second_write_of_a_key_is_refused_and_the_first_value_kept(aws: Any) -> None:
    from mlfleet.storage import write_json_once

    key = _key(aws)
    assert write_json_once(key, {"run": "a"}) is True
    assert write_json_once(key, {"run": "b"}) is False
    assert json.loads(key.read_text()) == {"run": "a"}


def test_of_writers_racing_for_one_key_exactly_one_wins(aws: Any) -> None:
    from mlfleet.storage import write_json_once

    key = _key(aws)
    start, won = threading.Barrier(6), []

    def writer(index: int) -> None:
        start.wait()
        if write_json_once(key, {"writer": index}):
            won.append(index)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1, won
    assert json.loads(key.read_text()) == {"writer": won[0]}
