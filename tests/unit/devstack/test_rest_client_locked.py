"""Requests Airflow refused because its SQLite metadata DB stayed locked are sent again; others are not."""

from __future__ import annotations

import httpx
import pytest

from mlfleet.devstack import rest_client

LOCKED = {"detail": {"reason": "Database error", "statement": "hidden", "orig_error": "hidden"}}


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rest_client, "LOCKED_WAIT_S", 0.0)


def answering(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)
    return httpx.MockTransport(handler)


def client(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.Client:
    return httpx.Client(base_url="http://airflow", transport=answering(answers, seen))


def test_a_locked_trigger_is_sent_again_until_it_is_answered() -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(500, json=LOCKED), httpx.Response(503, text="locked"),
               httpx.Response(200, json={"dag_run_id": "manual__1"})]
    with client(answers, seen) as http:
        resp = rest_client.send(http, "POST", "/api/v2/dags/d/dagRuns", json={"conf": {"a": 1}})
    assert resp.status_code == 200 and resp.json()["dag_run_id"] == "manual__1"
    assert len(seen) == 3 and all(r.content == seen[0].content for r in seen)


@pytest.mark.parametrize("answer", [
    httpx.Response(500, json={"detail": "Internal Server Error"}),
    httpx.Response(500, text="not json"),
    httpx.Response(400, json={"detail": "invalid spec"}),
    httpx.Response(409, json={"detail": "exists"}),
])
def test_other_errors_are_answered_at_once(answer: httpx.Response) -> None:
    seen: list[httpx.Request] = []
    with client([answer], seen) as http:
        assert rest_client.send(http, "POST", "/x").status_code == answer.status_code
    assert len(seen) == 1


def test_a_lock_that_never_clears_gives_its_last_answer_and_the_client_names_it() -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(500, json=LOCKED) for _ in range(rest_client.LOCKED_ATTEMPTS)]
    with client(answers, seen) as http:
        assert rest_client.send(http, "POST", "/x").status_code == 500
    assert len(seen) == rest_client.LOCKED_ATTEMPTS
    locked = [httpx.Response(500, json=LOCKED) for _ in range(rest_client.LOCKED_ATTEMPTS)]
    api = rest_client.ApiClient("http://airflow", "token", transport=answering(locked, []))
    with pytest.raises(RuntimeError, match=r"POST /dags/d/dagRuns -> HTTP 500: .*Database error"):
        api.trigger("d", {})
