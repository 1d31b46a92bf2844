"""Marshmallow schemas: they validate every request and generate the OpenAPI document.

Unknown fields are rejected everywhere, every string has a length bound, and an event's
timestamp must lie between the start of the retention window and a bounded clock skew ahead of
the server's clock. A paper is named by a canonical id or by the URL it was seen at; both are
normalised by :mod:`recommender.paperid`.

``EventBatchIn.load`` first tries a fast path compiled from these schemas at import
(:mod:`server.fastpath`; it shares :func:`paper_identity`, :func:`ts_problem` and
:func:`make_event` with them), and marshmallow decides whatever the fast path leaves to it and
builds every error answer.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from flask import current_app
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from recommender.paperid import canonical_paper_id
from recommender.store import KINDS, Event
from server.fastpath import compile_fast_path

HOST = validate.Regexp(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$",
    error="must be a lower-case host name such as arxiv.org",
)


# Hot papers arrive over and over: canonicalise each distinct string once per process.
_canonical_id = functools.lru_cache(maxsize=65_536)(canonical_paper_id)


def _settings() -> Any:
    return current_app.extensions["paperfeed"].settings


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class PaperIn(StrictSchema):
    id = fields.String(validate=validate.Length(1, 300), metadata={"example": "arxiv:2401.12345"})
    url = fields.String(
        validate=validate.Length(1, 2048),
        metadata={"example": "https://arxiv.org/pdf/2401.12345v2"},
    )
    title = fields.String(validate=validate.Length(1, 1000))
    authors = fields.List(
        fields.String(validate=validate.Length(1, 300)), validate=validate.Length(max=100)
    )
    abstract = fields.String(validate=validate.Length(1, 10_000))

    @validates_schema
    def _identity(self, data: dict[str, Any], **_: Any) -> None:
        paper_identity(data)

    @post_load
    def _with_canonical_id(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["canonical_id"] = _canonical_id(data.get("id") or data["url"])
        return data


def paper_identity(data: dict[str, Any]) -> str:
    """The canonical id of the paper that a valid ``PaperIn`` names.

    Raises ``ValidationError(message, field)`` when it names none (neither an id nor a URL, or
    one that is not recognised) or its id and URL name different papers. Shared by the schema
    and the fast path (:mod:`server.fastpath`).
    """
    found = None
    for name in ("id", "url"):
        if name in data:
            canonical = _canonical_id(data[name])
            if canonical is None:
                raise ValidationError(f"not a recognised paper {name}", name)
            if found is None:
                found = canonical
            elif canonical != found:
                raise ValidationError("id and url name different papers", "url")
    if found is None:
        raise ValidationError("a paper needs an id or a url", "id")
    return found


class EventIn(StrictSchema):
    id = fields.UUID(required=True, metadata={"description": "Client-generated event id."})
    type = fields.String(required=True, validate=validate.OneOf(KINDS))
    paper = fields.Nested(PaperIn, required=True)
    ts = fields.Integer(
        required=True, strict=False, metadata={"description": "Client time, Unix seconds."}
    )
    site = fields.String(required=True, validate=[validate.Length(1, 253), HOST])

    @validates("ts")
    def _recent(self, value: int, **_: Any) -> None:
        problem = ts_problem(value, _settings(), time.time())
        if problem:
            raise ValidationError(problem)

    @post_load
    def _event(self, data: dict[str, Any], **_: Any) -> Event:
        return make_event(str(data["id"]), data["type"], data["paper"], data["ts"], data["site"])


def ts_window(settings: Any, now: float) -> tuple[float, float]:
    """The oldest and the newest client timestamp accepted at ``now``."""
    return now - settings.retention_s, now + settings.max_clock_skew_s


def ts_problem(value: int, settings: Any, now: float) -> str | None:
    """Why an event's timestamp is refused at ``now``, or ``None`` if it is accepted."""
    oldest, newest = ts_window(settings, now)
    if value > newest:
        return (
            f"is {value - now:.0f} s ahead of the server clock "
            f"(at most {settings.max_clock_skew_s:.0f} s allowed)"
        )
    if value < oldest:
        return f"is older than the retention window of {settings.retention_days:g} days"
    return None


def make_event(event_id: str, kind: str, paper: dict[str, Any], ts: int, site: str) -> Event:
    """The :class:`Event` of one valid event whose paper carries its ``canonical_id``."""
    return Event(
        id=event_id,
        kind=kind,
        paper_id=paper["canonical_id"],
        ts=int(ts),
        site=site,
        title=_clean(paper.get("title")),
        abstract=_clean(paper.get("abstract")),
        authors=_authors(paper.get("authors")),
    )


def _authors(authors: list[str] | None) -> tuple[str, ...]:
    """The non-blank authors, each cleaned (most events carry none)."""
    if not authors:
        return ()
    return tuple(a for a in (_clean(x) for x in authors) if a)


def _clean(text: str | None) -> str | None:
    """Collapse runs of white space (listing pages wrap titles) and trim."""
    return " ".join(text.split()) if text else None


class EventBatchIn(StrictSchema):
    events = fields.List(fields.Nested(EventIn), required=True)

    @validates("events")
    def _size(self, value: list, **_: Any) -> None:
        limit = _settings().max_batch
        if not 1 <= len(value) <= limit:
            raise ValidationError(f"must hold 1 to {limit} events, got {len(value)}")

    def load(
        self,
        data: Any,
        *,
        many: bool | None = None,
        partial: bool | Any = None,
        unknown: str | None = None,
    ) -> Any:
        """As :meth:`Schema.load`; a plain load (as webargs makes it) tries the fast path
        first (:mod:`server.fastpath`), and marshmallow decides whatever that leaves to it."""
        plain = (many, partial, unknown) == (None, None, None) and not (
            self.many or self.partial or self.only or self.exclude or self.unknown != RAISE
        )
        if plain:
            loaded = FAST_PATH.load(data, _settings(), time.time())
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)


FAST_PATH = compile_fast_path(
    EventBatchIn, paper_identity=paper_identity, ts_window=ts_window, make_event=make_event
)


class IngestOut(Schema):
    accepted = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)


class UserOut(Schema):
    user_id = fields.String(required=True)
    token = fields.String(required=True, metadata={"description": "Shown once; keep it secret."})


class PaperOut(Schema):
    id = fields.String(required=True)
    title = fields.String()
    url = fields.String()
    abstract = fields.String()
    authors = fields.List(fields.String())
    readers = fields.Integer(metadata={"description": "Distinct readers in the retention window."})
    opens = fields.Integer()
    clicks = fields.Integer()
    dismisses = fields.Integer()
    first_seen = fields.Integer()


class TrendingItemOut(Schema):
    paper = fields.Nested(PaperOut, required=True)
    score = fields.Float(required=True, metadata={"description": "Decayed readers now."})
    readers = fields.Float(required=True, metadata={"description": "Same as score."})
    rising = fields.Boolean(
        required=True, metadata={"description": "Readers arrive faster today than this week."}
    )


class PageArgs(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10_000))


class TrendingArgs(PageArgs):
    window = fields.String(
        load_default="main",
        validate=validate.OneOf(("main", "day", "week")),
        metadata={"description": "main: the API's half-life; day: today; week: this week."},
    )


class TrendingOut(Schema):
    items = fields.List(fields.Nested(TrendingItemOut), required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    total = fields.Integer(required=True)
    half_life_hours = fields.Float(required=True)
    window = fields.String(required=True)


class HistoryPaperOut(Schema):
    id = fields.String(required=True)
    title = fields.String()


class HistoryEventOut(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True)
    paper = fields.Nested(HistoryPaperOut, required=True)
    ts = fields.Integer(required=True)
    site = fields.String()


class HistoryArgs(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


class HistoryOut(Schema):
    events = fields.List(fields.Nested(HistoryEventOut), required=True)


class ExportOut(Schema):
    user_id = fields.String(required=True)
    profile = fields.Dict(keys=fields.String(), values=fields.Raw())
    events = fields.List(fields.Nested(HistoryEventOut))
    seen = fields.List(fields.Dict())
    dismissed = fields.List(fields.Dict())
    email = fields.Raw(allow_none=True)
    emails_sent = fields.Dict()


class StatusOut(Schema):
    status = fields.String(required=True)
    writes = fields.String(metadata={"description": "only when Redis refuses writes: why"})


class ProblemOut(Schema):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String(allow_none=True)
    errors = fields.List(fields.Dict())
