"""The validation fast path (:mod:`server.fastpath`) against marshmallow, the source of truth.

Hypothesis generates valid batches in every wire form marshmallow accepts (UUIDs in any case,
braces or URN form, timestamps as floats or numeric strings, ids and URLs of papers) and
near-valid ones (one field missing, of a wrong type, one past a bound, an unknown key, a
timestamp just outside the window, a batch one event too long), and checks that both accept the
same batches and load the same :class:`~recommender.store.Event` values, and that a schema
change the fast path does not mirror fails loudly at compile time.
"""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError, fields, validate

from recommender.settings import Settings
from server import schemas
from server.fastpath import SchemaMismatch, compile_fast_path

NOW = 1_760_000_000.0
SETTINGS = Settings.from_env({}, max_batch=5, retention_days=30, max_clock_skew_s=300)
OLDEST, NEWEST = schemas.ts_window(SETTINGS, NOW)


@pytest.fixture(autouse=True)
def frozen_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An app context with SETTINGS (as the schemas read it) and the schemas' clock at NOW."""
    monkeypatch.setattr(schemas, "time", types.SimpleNamespace(time=lambda: NOW))
    app = Flask(__name__)
    app.extensions["paperfeed"] = types.SimpleNamespace(settings=SETTINGS)
    with app.app_context():
        yield


def by_marshmallow(data: Any) -> Any:
    """What the schema loads (bypassing the fast path), or "invalid"."""
    try:
        return super(schemas.EventBatchIn, schemas.EventBatchIn()).load(data)
    except ValidationError:
        return "invalid"


def by_fast_path(data: Any) -> Any:
    loaded = schemas.FAST_PATH.load(data, SETTINGS, NOW)
    return "invalid" if loaded is None else loaded


# -- generators ---------------------------------------------------------------------------
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@st.composite
def event_ids(draw: st.DrawFn) -> str:
    u = uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))
    form = draw(st.sampled_from(["plain", "upper", "braces", "urn", "hex"]))
    return {
        "plain": str(u),
        "upper": str(u).upper(),
        "braces": "{" + str(u) + "}",
        "urn": u.urn,
        "hex": u.hex,
    }[form]


# (an id, a URL) of the same paper, in the forms clients send
SAME_PAPER = [
    ("arxiv:2401.12345", "https://arxiv.org/pdf/2401.12345v2"),
    ("2402.00001v2", "https://arxiv.org/abs/2402.00001"),
    ("arXiv:hep-th/9901001", "https://arxiv.org/abs/hep-th/9901001"),
    ("2401.12345", "https://huggingface.co/papers/2401.12345"),
    ("doi:10.1145/3292500.3330701", "https://doi.org/10.1145/3292500.3330701"),
    ("10.1145/3292500.3330701", "doi.org/10.1145/3292500.3330701"),
    ("openreview:rJXMpikCZ", "https://openreview.net/forum?id=rJXMpikCZ"),
    ("acl:2020.acl-main.1", "https://aclanthology.org/2020.acl-main.1/"),
    ("pwc:searching-for-mobilenetv3", "https://paperswithcode.com/paper/searching-for-mobilenetv3"),
]
texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


@st.composite
def papers(draw: st.DrawFn) -> dict[str, Any]:
    paper: dict[str, Any] = {}
    paper_id, url = draw(st.sampled_from(SAME_PAPER))
    which = draw(st.sampled_from(["id", "url", "both"]))
    if which in ("id", "both"):
        paper["id"] = paper_id
    if which in ("url", "both"):
        paper["url"] = url
    if draw(st.booleans()):
        paper["title"] = draw(texts)
    if draw(st.booleans()):
        paper["authors"] = draw(st.lists(texts, max_size=3))
    if draw(st.booleans()):
        paper["abstract"] = draw(texts)
    return paper


timestamps = st.one_of(
    st.integers(int(OLDEST) + 1, int(NEWEST)),
    st.floats(OLDEST + 1, NEWEST),
    st.integers(int(OLDEST) + 1, int(NEWEST)).map(lambda t: f" {t} "),
)
sites = st.one_of(
    st.sampled_from(["arxiv.org", "huggingface.co", "scholar.google.com"]),
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True),
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": draw(event_ids()),
        "type": draw(st.sampled_from(["open", "click", "dismiss"])),
        "paper": draw(papers()),
        "ts": draw(timestamps),
        "site": draw(sites),
    }


# values at, and one past, each bound the schemas declare
BOUNDARY: dict[str, list[Any]] = {
    "ts": [
        int(NEWEST),
        int(NEWEST) + 1,
        NEWEST + 0.5,
        OLDEST,
        OLDEST - 1,
        str(int(NEWEST) + 1),
        "12.5",
        True,
        float("nan"),
        float("inf"),
        10**30,
    ],
    "site": [
        "a" * 63 + ".org",
        "a" * 64 + ".org",
        "arxiv.org\n",
        "ArXiv.org",
        "",
        ".".join(["a" * 63] * 4)[:253],
        ".".join(["a" * 63] * 4)[:254],
    ],
    "type": ["open ", "OPEN", "like", ""],
    "id": ["", "not-a-uuid", "0" * 31, "{" + "0" * 32, "+" + "0" * 31, str(uuid.uuid4()) + "\n"],
}
PAPER_BOUNDARY: dict[str, list[Any]] = {
    "title": ["x" * 1000, "x" * 1001, "", "  spaced \n title  "],
    "abstract": ["x" * 10_000, "x" * 10_001, ""],
    "authors": [["a"] * 100, ["a"] * 101, [""], ["x" * 300], ["x" * 301], "Ann", [1]],
    "id": ["", "x" * 301, "2401.123456", "https://example.com/blog"],
    "url": ["", "https://arxiv.org/abs/2401.99999", "https://example.com/x"],
}


def mutate(draw: st.DrawFn, event: Any) -> Any:
    """``event`` with one change that may or may not make it invalid."""
    if not isinstance(event, dict):
        return event
    mutation = draw(
        st.sampled_from(["drop", "junk", "boundary", "boundary", "extra", "paper", "not-dict"])
    )
    field = draw(st.sampled_from(["id", "type", "paper", "ts", "site"]))
    if mutation == "drop":
        event.pop(field, None)
    elif mutation == "junk":
        event[field] = draw(junk)
    elif mutation == "boundary":
        field = draw(st.sampled_from(list(BOUNDARY)))
        event[field] = draw(st.sampled_from(BOUNDARY[field]))
    elif mutation == "extra":
        event[draw(st.sampled_from(["colour", "Type", ""]))] = draw(junk)
    elif mutation == "paper" and isinstance(event.get("paper"), dict):
        name = draw(st.sampled_from([*PAPER_BOUNDARY, "extra"]))
        bound = st.sampled_from(PAPER_BOUNDARY.get(name, [None]))
        event["paper"][name] = draw(st.one_of(junk, bound, bound))
    else:
        return draw(junk)
    return event


@st.composite
def batches(draw: st.DrawFn) -> Any:
    """Valid batches with one or two events changed, batches of a size just out of bounds,
    bodies of the wrong shape."""
    shape = draw(st.sampled_from(["near", "near", "near", "twice", "size", "top"]))
    events = draw(st.lists(valid_events(), min_size=1, max_size=SETTINGS.max_batch))
    if shape in ("near", "twice"):
        for _ in range(1 if shape == "near" else 2):
            i = draw(st.integers(0, len(events) - 1))
            events[i] = mutate(draw, events[i])
    elif shape == "size":
        too_many = (events * SETTINGS.max_batch)[: SETTINGS.max_batch + 1]
        events = draw(st.sampled_from([[], too_many]))
    elif shape == "top":
        return draw(
            st.one_of(
                junk,
                st.just(events),
                st.just({"events": events, draw(st.sampled_from(["event", "x"])): 1}),
                st.just({"events": {str(i): e for i, e in enumerate(events)}}),
            )
        )
    return {"events": events}


# -- properties ---------------------------------------------------------------------------
COMMON = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@COMMON
@given(batch=st.lists(valid_events(), min_size=1, max_size=SETTINGS.max_batch))
def test_every_valid_batch_takes_the_fast_path_with_marshmallows_values(batch):
    body = {"events": batch}
    expected = by_marshmallow(body)
    assert expected != "invalid", "the generator made an invalid batch"
    assert by_fast_path(body) == expected


OUTCOMES: set[str] = set()


@COMMON
@given(body=batches())
def test_fast_path_and_marshmallow_agree_on_near_valid_batches(body):
    expected = by_marshmallow(body)
    assert by_fast_path(body) == expected
    OUTCOMES.add("rejected" if expected == "invalid" else "accepted")


def test_both_outcomes_were_generated():
    # runs after the property in file order: near-valid batches really produced both answers
    assert {"accepted", "rejected"} == OUTCOMES


def a_valid_event() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": "click",
        "paper": {"id": "arxiv:2401.12345", "title": "A title"},
        "ts": int(NOW),
        "site": "arxiv.org",
    }


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in BOUNDARY.items() for v in values]
)
def test_each_bound_of_an_event(field, value):
    body = {"events": [a_valid_event(), {**a_valid_event(), field: value}]}
    assert by_fast_path(body) == by_marshmallow(body)


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in PAPER_BOUNDARY.items() for v in values]
)
def test_each_bound_of_a_paper(field, value):
    event = a_valid_event()
    event["paper"][field] = value
    if field == "url":
        del event["paper"]["id"]
    body = {"events": [event]}
    assert by_fast_path(body) == by_marshmallow(body)
    both = {"events": [{**event, "paper": {**event["paper"], "id": "2401.12345"}}]}
    assert by_fast_path(both) == by_marshmallow(both)


def test_schema_load_uses_the_fast_path_and_falls_back(monkeypatch):
    calls = []
    real = schemas.FAST_PATH

    class Spy:
        def load(self, data, settings_, now):
            calls.append(data)
            return real.load(data, settings_, now)

    monkeypatch.setattr(schemas, "FAST_PATH", Spy())
    good = {
        "events": [
            {
                "id": str(uuid.uuid4()),
                "type": "open",
                "paper": {"id": "arxiv:2401.12345"},
                "ts": int(NOW),
                "site": "arxiv.org",
            }
        ]
    }
    loaded = schemas.EventBatchIn().load(good)
    assert loaded == by_marshmallow(good) and len(calls) == 1
    bad = {"events": [{**good["events"][0], "type": "like"}]}
    with pytest.raises(ValidationError) as info:
        schemas.EventBatchIn().load(bad)
    assert info.value.messages == {
        "events": {0: {"type": ["Must be one of: open, click, dismiss."]}}
    }
    # a load with options marshmallow handles goes straight to marshmallow
    schemas.EventBatchIn().load(good, partial=True)
    assert len(calls) == 2


def test_bounds_come_from_the_schemas():
    fast = schemas.FAST_PATH
    paper = schemas.PaperIn._declared_fields
    assert fast.paper_strings["title"].max_len == paper["title"].validators[0].max == 1000
    assert fast.authors_max == 100
    assert fast.kind.choices == frozenset(schemas.KINDS)
    assert fast.site.patterns == (schemas.HOST.regex,)


def _compile(batch_schema: type) -> Any:
    return compile_fast_path(
        batch_schema,
        paper_identity=schemas.paper_identity,
        ts_window=schemas.ts_window,
        make_event=schemas.make_event,
    )


@pytest.mark.parametrize(
    "change",
    [
        "new event field",
        "new paper field",
        "unmirrored validator",
        "nullable field",
        "new hook",
    ],
)
def test_a_schema_change_the_fast_path_does_not_mirror_fails_loudly(change):
    event_fields: dict[str, Any] = {}
    paper_fields: dict[str, Any] = {}
    if change == "new event field":
        event_fields["tab"] = fields.String()
    elif change == "new paper field":
        paper_fields["venue"] = fields.String()
    elif change == "unmirrored validator":
        paper_fields["title"] = fields.String(validate=validate.ContainsNoneOf(["<"]))
    elif change == "nullable field":
        event_fields["site"] = fields.String(required=True, allow_none=True)
    paper = type("PaperIn", (schemas.PaperIn,), paper_fields)
    nested = fields.Nested(paper, required=True)
    event = type("EventIn", (schemas.EventIn,), {**event_fields, "paper": nested})
    if change == "new hook":
        event = type(
            "EventIn",
            (event,),
            {"_lower": schemas.validates("site")(lambda self, value, **_: None)},
        )
    events = fields.List(fields.Nested(event), required=True)
    batch = type("EventBatchIn", (schemas.EventBatchIn,), {"events": events})
    with pytest.raises(SchemaMismatch):
        _compile(batch)


def test_the_current_schemas_compile():
    assert _compile(schemas.EventBatchIn) == schemas.FAST_PATH


@pytest.mark.parametrize(
    ("paper", "answer"),
    [
        ({"id": "arXiv:2401.12345v2"}, "arxiv:2401.12345"),
        ({"url": "https://arxiv.org/pdf/2401.12345"}, "arxiv:2401.12345"),
        (
            {"id": "arxiv:2401.12345", "url": "https://arxiv.org/abs/2401.12345v3"},
            "arxiv:2401.12345",
        ),
        ({"id": "not a paper"}, ("id", "not a recognised paper id")),
        ({"url": "https://example.com/blog"}, ("url", "not a recognised paper url")),
        ({"id": "junk", "url": "https://arxiv.org/abs/2401.12345"}, ("id", "not a recognised")),
        ({"id": "arxiv:2401.12345", "url": "https://arxiv.org/abs/2401.99999"}, ("url", "differ")),
        ({"title": "only a title"}, ("id", "needs an id or a url")),
    ],
)
def test_paper_identity_names_the_field_at_fault(paper, answer):
    # shared by the schema and the fast path: each way a paper can be named, or fail to be
    if isinstance(answer, str):
        assert schemas.paper_identity(paper) == answer
        return
    field, message = answer
    with pytest.raises(ValidationError) as raised:
        schemas.paper_identity(paper)
    assert raised.value.field_name == field
    assert message in str(raised.value)
