"""A fast path for validating ``POST /v1/events`` bodies, derived from the marshmallow schemas.

marshmallow (:mod:`server.schemas`) stays the source of truth: it documents the body in the
OpenAPI document and, for any body it rejects, produces the 422 problem with one JSON Pointer
per bad field. But its generic machinery costs about 35 µs per nested event, more than storing
the event. :class:`BatchFastPath` checks the plain JSON that a client sends with the bounds,
choices and patterns read from the schemas' own fields and validators, and runs the schemas'
own shared logic (:func:`~server.schemas.paper_identity`, :func:`~server.schemas.ts_problem`,
:func:`~server.schemas.make_event`) for the rest. It answers either the loaded batch (exactly
what ``EventBatchIn().load`` returns) or ``None``, and on ``None`` the caller runs marshmallow,
which then accepts the odd inputs the fast path leaves to it or builds the error answer.

At import, :func:`compile_fast_path` checks that the schemas still have exactly the fields,
validators and hooks mirrored here and raises :class:`SchemaMismatch` otherwise, so a schema
change cannot silently diverge from the fast path; ``tests/test_fastpath.py`` holds the two to
the same answers on generated valid and near-valid batches.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate
from marshmallow.constants import missing

# A UUID in the form str(uuid.UUID(x)) returns: such a string loads to itself.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class SchemaMismatch(RuntimeError):
    """The marshmallow schemas changed in a way the fast path does not mirror."""


@dataclass(frozen=True)
class StringSpec:
    """What a ``fields.String`` accepts: a length range, optional choices, patterns to match."""

    min_len: int
    max_len: float
    choices: frozenset[str] | None
    patterns: tuple[re.Pattern[str], ...]

    def accepts(self, value: Any) -> bool:
        if type(value) is not str or not self.min_len <= len(value) <= self.max_len:
            return False
        if self.choices is not None and value not in self.choices:
            return False
        for pattern in self.patterns:  # noqa: SIM110 (a loop is faster than all() here)
            if pattern.match(value) is None:
                return False
        return True


def _plain(field: fields.Field, name: str) -> None:
    """Refuse field options the fast path does not mirror."""
    if (
        field.allow_none
        or field.data_key is not None
        or field.attribute is not None
        or field.load_default is not missing
        or field.pre_load
        or field.dump_only
    ):
        raise SchemaMismatch(f"{name}: options the fast path does not mirror")


def _string_spec(field: fields.Field, name: str) -> StringSpec:
    if type(field) is not fields.String:
        raise SchemaMismatch(f"{name}: expected fields.String, found {type(field).__name__}")
    _plain(field, name)
    min_len, max_len, choices, patterns = 0, float("inf"), None, []
    for v in field.validators:
        if type(v) is validate.Length and v.equal is None:
            min_len = max(min_len, v.min or 0)
            max_len = min(max_len, v.max if v.max is not None else float("inf"))
        elif type(v) is validate.OneOf:
            choices = frozenset(v.choices)
        elif type(v) is validate.Regexp:
            patterns.append(v.regex)
        else:
            raise SchemaMismatch(f"{name}: validator {v!r} is not mirrored by the fast path")
    return StringSpec(min_len, max_len, choices, tuple(patterns))


def _hooks(schema: type[Schema]) -> dict[str, set[str]]:
    """The schema's processor and validator hooks: tag -> method names."""
    return {tag: {name for name, *_ in hooks} for tag, hooks in schema._hooks.items() if hooks}


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise SchemaMismatch(message)


@dataclass(frozen=True)
class BatchFastPath:
    """Loads a plain-JSON event batch as ``EventBatchIn`` does, or answers ``None``."""

    event_keys: frozenset[str]
    paper_keys: frozenset[str]
    kind: StringSpec
    site: StringSpec
    paper_strings: dict[str, StringSpec]
    authors_max: int
    author: StringSpec
    ts_strict: bool
    paper_identity: Any
    ts_window: Any
    make_event: Any

    def load(self, data: Any, settings: Any, now: float) -> dict[str, list[Any]] | None:
        """``{"events": [Event, ...]}`` if ``data`` is a valid batch at ``now``, else ``None``.

        ``None`` does not mean invalid: it means "ask marshmallow" (which decides, and builds
        the error answer if it rejects).
        """
        if type(data) is not dict or len(data) != 1 or type(data.get("events")) is not list:
            return None
        items = data["events"]
        if not 1 <= len(items) <= settings.max_batch:
            return None
        oldest, newest = self.ts_window(settings, now)
        out = []
        for item in items:
            event = self._event(item, oldest, newest)
            if event is None:
                return None
            out.append(event)
        return {"events": out}

    def _event(self, item: Any, oldest: float, newest: float) -> Any:
        if type(item) is not dict or item.keys() != self.event_keys:
            return None
        event_id = item["id"]
        if type(event_id) is not str:
            return None
        if not _CANONICAL_UUID.fullmatch(event_id):
            try:
                event_id = str(uuid.UUID(event_id))
            except (ValueError, AttributeError, TypeError):
                return None
        kind, site, ts = item["type"], item["site"], item["ts"]
        if not self.kind.accepts(kind) or not self.site.accepts(site):
            return None
        # fields.Integer: never a bool; strict: an int; else anything int() takes
        if ts is True or ts is False or (self.ts_strict and type(ts) is not int):
            return None
        if type(ts) is not int:
            try:
                ts = int(ts)
            except (TypeError, ValueError, OverflowError):
                return None
        if ts > newest or ts < oldest:
            return None
        paper = self._paper(item["paper"])
        if paper is None:
            return None
        return self.make_event(event_id, kind, paper, ts, site)

    def _paper(self, paper: Any) -> dict[str, Any] | None:
        if type(paper) is not dict or not paper.keys() <= self.paper_keys:
            return None
        strings = self.paper_strings
        for name, value in paper.items():
            if name == "authors":
                if type(value) is not list or len(value) > self.authors_max:
                    return None
                if not all(self.author.accepts(a) for a in value):
                    return None
            elif not strings[name].accepts(value):
                return None
        try:
            canonical = self.paper_identity(paper)
        except ValidationError:
            return None
        return {**paper, "canonical_id": canonical}


def compile_fast_path(
    batch_schema: type[Schema], *, paper_identity: Any, ts_window: Any, make_event: Any
) -> BatchFastPath:
    """Read the bounds of ``batch_schema`` (``EventBatchIn``) and its nested event and paper
    schemas into a :class:`BatchFastPath` that calls the schemas' shared helpers.

    Raises :class:`SchemaMismatch` if the schemas have fields, options, validators or hooks
    that the fast path does not mirror.
    """

    def strict(schema: type[Schema]) -> dict[str, fields.Field]:
        _expect(schema.opts.unknown == RAISE, f"{schema.__name__}: unknown fields must raise")
        return dict(schema._declared_fields)

    batch = strict(batch_schema)
    _expect(set(batch) == {"events"}, "EventBatchIn: fields changed")
    events = batch["events"]
    _expect(type(events) is fields.List and events.required, "events: a required List")
    _plain(events, "events")
    _expect(not events.validators, "events: validators the fast path does not mirror")
    _expect(_hooks(batch_schema) == {"validates": {"_size"}}, "EventBatchIn: hooks changed")
    nested = events.inner
    _expect(type(nested) is fields.Nested and not nested.validators, "events: a List of Nested")
    _plain(nested, "events[]")
    event_schema = nested.nested
    _expect(isinstance(event_schema, type) and issubclass(event_schema, Schema), "events[]")

    event = strict(event_schema)
    _expect(set(event) == {"id", "type", "paper", "ts", "site"}, "EventIn: fields changed")
    _expect(all(f.required for f in event.values()), "EventIn: every field is required")
    _expect(type(event["id"]) is fields.UUID and not event["id"].validators, "id: a UUID")
    _plain(event["id"], "id")
    ts = event["ts"]
    _expect(type(ts) is fields.Integer and not ts.validators, "ts: an Integer")
    _plain(ts, "ts")
    paper_field = event["paper"]
    _expect(type(paper_field) is fields.Nested and not paper_field.validators, "paper: Nested")
    _plain(paper_field, "paper")
    paper_schema = paper_field.nested
    _expect(isinstance(paper_schema, type) and issubclass(paper_schema, Schema), "paper")
    _expect(
        _hooks(event_schema) == {"validates": {"_recent"}, "post_load": {"_event"}},
        "EventIn: hooks changed",
    )

    paper = strict(paper_schema)
    _expect(set(paper) == {"id", "url", "title", "authors", "abstract"}, "PaperIn: fields changed")
    _expect(not any(f.required for f in paper.values()), "PaperIn: every field is optional")
    authors = paper.pop("authors")
    _expect(type(authors) is fields.List, "authors: a List")
    _plain(authors, "authors")
    lengths = [v for v in authors.validators if type(v) is validate.Length]
    _expect(
        len(lengths) == len(authors.validators) == 1
        and lengths[0].min is None
        and lengths[0].equal is None
        and lengths[0].max is not None,
        "authors: one Length(max=...) validator",
    )
    _expect(
        _hooks(paper_schema)
        == {"validates_schema": {"_identity"}, "post_load": {"_with_canonical_id"}},
        "PaperIn: hooks changed",
    )
    return BatchFastPath(
        event_keys=frozenset(event),
        paper_keys=frozenset([*paper, "authors"]),
        kind=_string_spec(event["type"], "type"),
        site=_string_spec(event["site"], "site"),
        paper_strings={name: _string_spec(f, f"paper.{name}") for name, f in paper.items()},
        authors_max=lengths[0].max,
        author=_string_spec(authors.inner, "authors[]"),
        ts_strict=bool(ts.strict),
        paper_identity=paper_identity,
        ts_window=ts_window,
        make_event=make_event,
    )
