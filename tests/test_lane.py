"""The events lane (server/lane.py) answers exactly as the Flask app does.

Each request is sent twice: through the app as served (the lane in front of Flask) and straight
to Flask's own WSGI callable, with a fresh event each time, and the two answers must match in
status, headers and body. The lane's ``answered`` counter tells which requests it answered
itself and which it handed to Flask.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import redis
from werkzeug.test import Client

from server import metrics
from server.lane import EventsLane
from tests.helpers import event

pytestmark = pytest.mark.integration

CHROME = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
FIREFOX = "moz-extension://0f3c2a4e-6b1d-4c8e-9a7f-2d5e8b1c3a90"


@pytest.fixture
def lane(app: Any) -> EventsLane:
    assert isinstance(app.wsgi_app, EventsLane)
    return app.wsgi_app


def both(lane: EventsLane, make_body: Any, **kwargs: Any) -> tuple[Any, Any]:
    """The same request through the lane and through Flask alone; each gets its own body
    (``make_body()``) so that fresh events are accepted on both sides."""
    headers = {"X-Request-ID": "req-1", **kwargs.pop("headers", {})}
    through_lane = Client(lane).post("/v1/events", data=make_body(), headers=headers, **kwargs)
    flask_only = Client(lane.app).post("/v1/events", data=make_body(), headers=headers, **kwargs)
    return through_lane, flask_only


def same_answer(a: Any, b: Any) -> None:
    assert a.status == b.status
    assert a.get_data() == b.get_data()
    assert list(a.headers.items()) == list(b.headers.items())


def batch(*events: dict[str, Any]) -> Any:
    return lambda: json.dumps({"events": [dict(e, id=event()["id"]) for e in events]})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": CHROME},
        {"Origin": FIREFOX},
        {"Origin": "https://evil.example"},
        {"X-Request-ID": "not a valid id!"},
        {"Content-Type": "application/json; charset=utf-8"},
    ],
    ids=["plain", "chrome", "firefox", "foreign-origin", "bad-request-id", "charset"],
)
def test_lane_answers_valid_batches_as_flask_does(lane, user, headers):
    body = batch(
        event(),
        event("https://arxiv.org/pdf/2401.00001v2", kind="click", title="A  title"),
        event("doi:10.1145/3270323.3270328", kind="dismiss"),
    )
    before = lane.answered
    a, b = both(
        lane,
        body,
        headers={"Content-Type": "application/json", **user["auth"], **headers},
    )
    assert lane.answered == before + 1
    assert a.status_code == 202 and a.get_json() == {"accepted": 3, "duplicates": 0}
    if headers.get("X-Request-ID"):  # a fresh id on each side
        a.headers["X-Request-ID"] = b.headers["X-Request-ID"]
    same_answer(a, b)


def test_lane_counts_duplicates_and_metrics(lane, user):
    sent = {"events": [event(), event("arxiv:2401.00002")]}
    counter = metrics.child(metrics.EVENTS, "duplicate")
    duplicates_before = counter._value.get()
    first = Client(lane).post("/v1/events", json=sent, headers=user["auth"])
    again = Client(lane).post("/v1/events", json=sent, headers=user["auth"])
    assert first.get_json() == {"accepted": 2, "duplicates": 0}
    assert again.get_json() == {"accepted": 0, "duplicates": 2}
    assert counter._value.get() == duplicates_before + 2


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (batch(event()), {}, 401),  # no token
        (batch(event()), {"Authorization": "Bearer u.nope"}, 401),
        (batch(event(kind="like")), None, 422),
        (batch(*[event()] * 501), None, 422),  # more than the batch limit: marshmallow says so
        (lambda: "{not json", None, 400),
        (lambda: "", None, 422),  # no body: "events" is missing
        (lambda: "x" * 2_000_000, None, 413),
        (batch(event()), {"Content-Type": "text/plain"}, 415),
    ],
    ids=["no-token", "bad-token", "bad-type", "too-many", "not-json", "empty", "huge", "text"],
)
def test_lane_hands_everything_else_to_flask(lane, user, body, headers, status):
    headers = {"Content-Type": "application/json", **(user["auth"] if headers is None else headers)}
    before = lane.answered
    a, b = both(lane, body, headers=headers)
    assert lane.answered == before
    assert a.status_code == status
    same_answer(a, b)


@pytest.mark.parametrize("case", ["wrong-secret", "unknown-user", "being-erased"])
def test_lane_hands_a_token_the_store_refuses_to_flask(app, lane, user, case):
    # A well-formed token is checked where the batch is written (no look-up before): when the
    # store refuses it, Flask answers the same 401 and nothing is stored
    st = app.extensions["paperfeed"]
    token = user["token"]
    if case == "wrong-secret":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif case == "unknown-user":
        token = token.replace(user["user_id"], "0" * 32)
    else:  # DELETE /v1/me has begun for this account
        st.redis.hset(st.keys.user(user["user_id"]), "erasing", 1)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    before = lane.answered
    a, b = both(lane, batch(event()), headers=headers)
    assert lane.answered == before
    assert a.status_code == 401
    assert a.get_json()["type"].endswith("/invalid-token")
    same_answer(a, b)
    assert st.redis.xlen(st.keys.stream(0)) == 0


def test_lane_leaves_other_methods_and_paths_to_flask(lane, user):
    before = lane.answered
    assert Client(lane).get("/v1/events", headers=user["auth"]).status_code == 405
    preflight = Client(lane).options(
        "/v1/events",
        headers={"Origin": CHROME, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == CHROME
    assert Client(lane).post("/v1/events/", json={}, headers=user["auth"]).status_code in (
        308,
        404,
    )
    assert lane.answered == before


@pytest.mark.parametrize(
    ("error", "status"),
    [(redis.ConnectionError("down"), 503), (RuntimeError("bug"), 500)],
    ids=["redis-down", "bug"],
)
def test_an_error_while_storing_is_answered_by_flask_once(app, lane, user, error, status):
    calls = []

    def failing_ingest(user_id: str, events: Any, **kwargs: Any) -> Any:
        calls.append(user_id)
        raise error

    app.extensions["paperfeed"].store.ingest = failing_ingest  # the lane's and the view's
    response = Client(lane).post("/v1/events", json={"events": [event()]}, headers=user["auth"])
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert calls == [user["user_id"]]  # stored once: Flask raised the lane's error again
    if status == 503:
        assert int(response.headers["Retry-After"]) > 0


def test_lane_logs_one_line_with_the_request_id(lane, user, caplog):
    caplog.set_level(logging.INFO, logger="paperfeed.access")
    Client(lane).post(
        "/v1/events",
        json={"events": [event()]},
        headers={**user["auth"], "X-Request-ID": "trace-42"},
    )
    lines = [r for r in caplog.records if r.name == "paperfeed.access"]
    assert len(lines) == 1
    assert lines[0].request_id == "trace-42"
    assert "endpoint=/v1/events status=202" in lines[0].getMessage()
    assert user["token"] not in lines[0].getMessage()
