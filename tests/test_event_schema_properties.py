"""Hypothesis over the event schema: whatever a client sends, ``POST /v1/events`` answers 202 or
a 422 problem whose pointers name fields of the batch, never a 5xx; valid events are stored
once; a rejected batch stores nothing."""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

NOW = int(time.time())
OUTCOMES: set[int] = set()
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
valid_paper = st.fixed_dictionaries(
    {
        "id": st.sampled_from(
            ["arxiv:2401.12345", "2402.00001v2", "doi:10.1145/3292500.3330701", "hep-th/9901001"]
        )
    },
    optional={
        "title": st.text(min_size=1, max_size=50),
        "authors": st.lists(st.text(min_size=1, max_size=20), max_size=3),
    },
)
valid_event = st.builds(
    lambda paper, kind, skew: {
        "id": str(uuid.uuid4()),
        "type": kind,
        "paper": paper,
        "ts": NOW - skew,
        "site": "arxiv.org",
    },
    valid_paper,
    st.sampled_from(["open", "click", "dismiss"]),
    st.integers(0, 86400),
)


@st.composite
def maybe_broken_event(draw):
    event = draw(valid_event)
    if draw(st.booleans()):
        field = draw(st.sampled_from(["id", "type", "paper", "ts", "site", "extra"]))
        if draw(st.booleans()) and field != "extra":
            event.pop(field)
        else:
            event[field] = draw(junk)
    return event


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(maybe_broken_event(), min_size=0, max_size=6))
def test_any_batch_is_202_or_a_precise_422(client, user, redis_client, prefix, batch):
    before = redis_client.xlen(f"{prefix}:{{log:0}}:stream")
    response = client.post("/v1/events", json={"events": batch}, headers=user["auth"])
    after = redis_client.xlen(f"{prefix}:{{log:0}}:stream")
    assert response.status_code in (202, 422), response.get_data(as_text=True)
    OUTCOMES.add(response.status_code)
    if response.status_code == 202:
        body = response.get_json()
        assert body["accepted"] + body["duplicates"] == len(batch)
        assert after - before == body["accepted"]
    else:
        assert response.mimetype == "application/problem+json"
        assert after == before, "a rejected batch stored something"
        for error in response.get_json()["errors"]:
            parts = error["pointer"].split("/")
            assert parts[1] == "events"
            if len(parts) > 2:
                assert 0 <= int(parts[2]) < len(batch)


def test_both_outcomes_were_generated():
    # runs after the property in file order: the generator really produced both kinds
    assert {202, 422} == OUTCOMES
