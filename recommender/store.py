"""The event store on Redis: ingestion, the paper catalogue, trending, history, export, erasure.

Writes, in order, for one batch of one user's events:

1. One Lua script on the user's event-log partition adds each event id to the partition's
   de-duplication set and, only if it was new, appends the event to the stream. The stream and
   the set share a hash tag, so the script is atomic on a Redis Cluster too: an event is in the
   log exactly once, however often the client retries it. The same script records whether the
   user is a new reader of the paper (a distinct reader counts once in trending).
2. One pipeline updates what is derived from the accepted events: the user's seen / dismissed
   papers and stream entries, the catalogue, and the trending scores (a second script that adds
   decayed increments and rebases the scores when they grow too large).

The API answers only after both steps returned, so an acknowledged event is in the log. If a
process dies between the two steps, the log (the source of truth for training) is complete and
only derived counters miss that batch.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.cluster import RedisCluster

from recommender import trending
from recommender.keys import Keys
from recommender.settings import Settings

KINDS = ("open", "click", "dismiss")
READ_KINDS = ("open", "click")
# A paper's public text is set by its first reader; later readers who send different text
# replace it only when this many distinct readers agree on the new version.
METADATA_QUORUM = 3
# A paper is "rising" when today's reading rate exceeds the week's average rate this much.
RISING_RATIO = 1.5

_INGEST_LUA = """
-- KEYS[1] stream, KEYS[2] dedupe; ARGV[1] retention (ms), ARGV[2] number of events, then 7
-- values each. Arrival times come from the server's clock, as the stream's entry ids do.
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
local n = tonumber(ARGV[2])
local out = {}
local i = 3
for j = 1, n do
  local u, e, k, p, ts, s = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local reader = ARGV[i + 6]
  i = i + 7
  if redis.call('ZADD', KEYS[2], 'NX', now, 'e:' .. u .. ':' .. e) == 1 then
    local id = redis.call('XADD', KEYS[1], '*', 'u', u, 'e', e, 'k', k, 'p', p, 'ts', ts, 's', s)
    local new_reader = 0
    if reader == '1' then
      new_reader = redis.call('ZADD', KEYS[2], 'NX', now, 'r:' .. u .. ':' .. p)
    end
    out[j] = {id, new_reader}
  else
    out[j] = false
  end
end
-- retention: drop log entries and de-duplication marks older than the window
local cutoff = now - tonumber(ARGV[1])
redis.call('XTRIM', KEYS[1], 'MINID', cutoff)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff)
return out
"""

_TRENDING_LUA = """
-- KEYS[1] scores, KEYS[2] epoch; ARGV[1] half-life (s), ARGV[2] default epoch,
-- ARGV[3] rebase exponent, ARGV[4] sign (+1 add, -1 remove), then (paper, ts) pairs
local half = tonumber(ARGV[1])
local epoch = tonumber(redis.call('GET', KEYS[2]) or ARGV[2])
local sign = tonumber(ARGV[4])
local latest = epoch
for i = 5, #ARGV, 2 do
  local ts = tonumber(ARGV[i + 1])
  if ts > latest then latest = ts end
end
if (latest - epoch) / half > tonumber(ARGV[3]) then
  local new_epoch = latest - half * 8
  local factor = 2 ^ (-(new_epoch - epoch) / half)
  redis.call('ZUNIONSTORE', KEYS[1], 1, KEYS[1], 'WEIGHTS', factor)
  redis.call('SET', KEYS[2], string.format('%.3f', new_epoch))
  epoch = new_epoch
end
for i = 5, #ARGV, 2 do
  local inc = sign * 2 ^ ((tonumber(ARGV[i + 1]) - epoch) / half)
  local score = tonumber(redis.call('ZINCRBY', KEYS[1], inc, ARGV[i]))
  if score <= 1e-9 * math.abs(inc) then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
-- forget papers whose momentum decayed below a thousandth of a reader
local floor = 1e-3 * 2 ^ ((latest - epoch) / half)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.17g', floor))
return tostring(epoch)
"""


_USER_LUA = """
-- KEYS[1] entries, KEYS[2] seen, KEYS[3] dismissed; ARGV[1] retention cutoff (s), then
-- (entry ref, kind, paper, ts) for each event
for i = 1, 3 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[1]) end
for i = 2, #ARGV, 4 do
  local ref, kind, paper, ts = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('ZADD', KEYS[1], ts, ref)
  if kind == 'dismiss' then
    redis.call('ZADD', KEYS[3], ts, paper)
  else
    redis.call('ZADD', KEYS[2], 'GT', ts, paper)
  end
end
return 0
"""

_PAPER_LUA = """
-- KEYS[1] paper, KEYS[2] claims, KEYS[3] claimants
-- ARGV: user, first-seen ts, opens, clicks, dismisses, new readers, digest, metadata JSON,
--       quorum. The first reader's metadata wins; a different version replaces it once
--       `quorum` distinct readers sent it (one vote per reader: a changed text moves the vote).
redis.call('HSETNX', KEYS[1], 'first_seen', ARGV[2])
local counts = {'opens', 'clicks', 'dismisses', 'readers'}
for i = 1, 4 do
  local n = tonumber(ARGV[2 + i])
  if n ~= 0 then redis.call('HINCRBY', KEYS[1], counts[i], n) end
end
local digest = ARGV[7]
if digest == '' then return 0 end
local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous == digest then return 0 end
if previous then redis.call('HINCRBY', KEYS[2], previous, -1) end
redis.call('HSET', KEYS[3], ARGV[1], digest)
local votes = redis.call('HINCRBY', KEYS[2], digest, 1)
redis.call('HSETNX', KEYS[2], 'm:' .. digest, ARGV[8])
local replace = votes >= tonumber(ARGV[9])
for name, value in pairs(cjson.decode(ARGV[8])) do
  if replace then
    redis.call('HSET', KEYS[1], name, value)
  else
    redis.call('HSETNX', KEYS[1], name, value)
  end
end
return votes
"""

_UNCLAIM_LUA = """
-- KEYS[2] claims, KEYS[3] claimants; ARGV[1] user: take the reader's vote back
local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous then
  redis.call('HINCRBY', KEYS[2], previous, -1)
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 0
"""


@dataclass(frozen=True)
class Event:
    """One validated event, its paper already canonical."""

    id: str
    kind: str
    paper_id: str
    ts: int
    site: str
    title: str | None = None
    url: str | None = None
    abstract: str | None = None
    authors: tuple[str, ...] = ()

    def metadata(self) -> dict[str, str]:
        """The public metadata this event carries, as catalogue fields.

        The catalogue's ``url`` is rebuilt from the canonical id, never the address the reader
        was at, so no page URL of anyone's browsing is stored.
        """
        fields = {"title": self.title, "url": paper_url(self.paper_id), "abstract": self.abstract}
        out = {k: v for k, v in fields.items() if v}
        if self.authors:
            out["authors"] = json.dumps(list(self.authors), ensure_ascii=False)
        return out


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


class EventStore:
    """Reads and writes Paperfeed's events and what is derived from them.

    Parameters
    ----------
    redis : redis.Redis or redis.cluster.RedisCluster
        A client with ``decode_responses=True``.
    settings : Settings
    """

    def __init__(self, redis: Any, settings: Settings, keys: Keys | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = keys or Keys(settings.key_prefix, settings.stream_partitions)
        self._cluster = isinstance(redis, RedisCluster)
        self._ingest = redis.register_script(_INGEST_LUA)
        self._trending = redis.register_script(_TRENDING_LUA)
        self._user = redis.register_script(_USER_LUA)
        self._paper = redis.register_script(_PAPER_LUA)
        self._unclaim = redis.register_script(_UNCLAIM_LUA)

    def _script(self, script: Any, keys: list[str], args: list[Any], pipe: Any) -> None:
        """Queue ``script`` on ``pipe``; a Cluster pipeline refuses EVALSHA, so it gets EVAL."""
        if self._cluster:
            pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
        else:
            script(keys=keys, args=args, client=pipe)

    # -- writing ------------------------------------------------------------------------
    def ingest(
        self, user_id: str, events: Sequence[Event], now: float | None = None
    ) -> IngestResult:
        """Append ``events`` of ``user_id`` to the log once each and update derived keys."""
        if not events:
            return IngestResult(0, 0)
        now = time.time() if now is None else now
        k = self.keys
        partition = k.partition_of(user_id)
        args: list[Any] = [int(self.settings.retention_s * 1000), len(events)]
        for ev in events:
            reader = "1" if ev.kind in READ_KINDS else "0"
            args += [user_id, ev.id, ev.kind, ev.paper_id, ev.ts, ev.site, reader]
        results = self._ingest(keys=[k.stream(partition), k.dedupe(partition)], args=args)

        accepted = [(ev, res) for ev, res in zip(events, results, strict=True) if res]
        if accepted:
            self._derive(user_id, partition, accepted, now)
        return IngestResult(len(accepted), len(events) - len(accepted))

    def _derive(self, user_id: str, partition: int, accepted: list, now: float) -> None:
        """Update the user's keys, each paper's catalogue entry and trending: one script per
        hash slot, all in one pipeline (a handful of commands for a batch of hundreds)."""
        k = self.keys
        user_args: list[Any] = [int(now - self.settings.retention_s)]
        per_paper: dict[str, dict[str, Any]] = {}
        new_readers: list[tuple[str, int]] = []
        for ev, (entry_id, new_reader) in accepted:
            ts = min(ev.ts, int(now))
            user_args += [f"{partition}/{entry_id}", ev.kind, ev.paper_id, ts]
            paper = per_paper.setdefault(
                ev.paper_id, {"ts": ts, "open": 0, "click": 0, "dismiss": 0, "readers": 0}
            )
            paper["ts"] = min(paper["ts"], ts)
            paper[ev.kind] += 1
            if new_reader:
                paper["readers"] += 1
                new_readers.append((ev.paper_id, ts))
            meta = ev.metadata()
            if meta:
                paper["meta"] = meta  # the batch's last version of a paper's text counts
        pipe = self.redis.pipeline(transaction=False)
        user_keys = [k.user_entries(user_id), k.user_seen(user_id), k.user_dismissed(user_id)]
        self._script(self._user, user_keys, user_args, pipe)
        for pid, paper in per_paper.items():
            digest, blob = "", ""
            if "meta" in paper:
                blob = json.dumps(paper["meta"], sort_keys=True, ensure_ascii=False)
                digest = hashlib.sha256(blob.encode()).hexdigest()[:32]
            self._script(
                self._paper,
                [k.paper(pid), k.paper_claims(pid), k.paper_claimants(pid)],
                [
                    user_id,
                    paper["ts"],
                    paper["open"],
                    paper["click"],
                    paper["dismiss"],
                    paper["readers"],
                    digest,
                    blob,
                    METADATA_QUORUM,
                ],
                pipe,
            )
        pipe.zadd(k.papers(), {pid: paper["ts"] for pid, paper in per_paper.items()}, nx=True)
        if new_readers:
            self.queue_readers(pipe, new_readers, sign=1)
        pipe.execute()

    def queue_readers(self, pipe: Any, readers: Iterable[tuple[str, int]], sign: int) -> None:
        """Queue on ``pipe``: add (or, with ``sign=-1``, take back) ``(paper, first-read time)``
        readers in every trending window. Also used to seed a demo catalogue."""
        k = self.keys
        pairs: list[Any] = []
        for paper_id, ts in readers:
            pairs += [paper_id, ts]
        for window, half_life in self.settings.trending_windows.items():
            args = [half_life, trending.DEFAULT_EPOCH, trending.REBASE_EXPONENT, sign, *pairs]
            keys = [k.trending(window), k.trending_epoch(window)]
            self._script(self._trending, keys, args, pipe)

    def trim(self, now: float | None = None) -> int:
        """Drop log entries and de-duplication marks older than the retention window."""
        now = time.time() if now is None else now
        cutoff_ms = int((now - self.settings.retention_s) * 1000)
        removed = 0
        for p in range(self.keys.partitions):
            removed += self.redis.xtrim(self.keys.stream(p), minid=cutoff_ms, approximate=False)
            self.redis.zremrangebyscore(self.keys.dedupe(p), "-inf", cutoff_ms)
        return removed

    # -- reading ------------------------------------------------------------------------
    def papers(self, paper_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Catalogue entries for ``paper_ids`` (``None`` where unknown), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for pid in paper_ids:
            pipe.hgetall(self.keys.paper(pid))
        return [
            _paper_view(pid, raw) if raw else None
            for pid, raw in zip(paper_ids, pipe.execute(), strict=True)
        ]

    def paper(self, paper_id: str) -> dict[str, Any] | None:
        return self.papers([paper_id])[0]

    def trending(
        self, offset: int, limit: int, now: float | None = None, window: str = "main"
    ) -> tuple[list[dict[str, Any]], int]:
        """Global trending in ``window``, most momentum first, and how many papers it holds.

        Each item: ``{"paper": catalogue entry, "score": decayed readers now, "rising": bool}``.
        A paper is rising when readers arrive faster now (its "today" intensity) than on
        average over the week, by ``RISING_RATIO``.
        """
        now = time.time() if now is None else now
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrevrange(k.trending(window), offset, offset + limit - 1, withscores=True)
        pipe.zcard(k.trending(window))
        self._queue_epochs(pipe)
        rows, total, *epochs = pipe.execute()
        epochs = self._epochs(epochs)
        ids = [pid for pid, _ in rows]
        scores = self._decayed(window, [s for _, s in rows], now, epochs)
        rising = self._rising(ids, now, epochs)
        papers = self.papers(ids)
        items = [
            {"paper": paper or {"id": pid}, "score": float(score), "rising": up}
            for pid, paper, score, up in zip(ids, papers, scores, rising, strict=True)
        ]
        return items, int(total)

    def _queue_epochs(self, pipe: Any) -> None:
        """Queue a read of every window's epoch (a Cluster pipeline refuses MGET: one GET each)."""
        for window in self.settings.trending_windows:
            pipe.get(self.keys.trending_epoch(window))

    def _epochs(self, values: Sequence[str | None]) -> dict[str, float]:
        """The epochs :meth:`_queue_epochs` read, by window."""
        windows = list(self.settings.trending_windows)
        return {
            w: float(v) if v else trending.DEFAULT_EPOCH
            for w, v in zip(windows, values, strict=True)
        }

    def _decayed(
        self, window: str, raw: Sequence[float], now: float, epochs: dict[str, float]
    ) -> list[float]:
        half_life = self.settings.trending_windows[window]
        return [float(x) for x in trending.to_now(raw, now, epochs[window], half_life)]

    def _rising(self, paper_ids: Sequence[str], now: float, epochs: dict[str, float]) -> list[bool]:
        """Whether each paper's readers arrive faster today than on average this week."""
        if not paper_ids:
            return []
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.zmscore(k.trending("day"), list(paper_ids))
        pipe.zmscore(k.trending("week"), list(paper_ids))
        day_raw, week_raw = pipe.execute()
        day = self._decayed("day", [x or 0.0 for x in day_raw], now, epochs)
        week = self._decayed("week", [x or 0.0 for x in week_raw], now, epochs)
        windows = self.settings.trending_windows
        out = []
        for d, w in zip(day, week, strict=True):
            day_rate = d / windows["day"]  # readers per second now (up to the factor ln 2)
            week_rate = w / windows["week"]
            out.append(d >= 1.0 and day_rate > RISING_RATIO * week_rate)
        return out

    def user_events(self, user_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The user's events from the log, newest first (all of them when ``limit`` is None)."""
        end = -1 if limit is None else limit - 1
        refs = self.redis.zrevrange(self.keys.user_entries(user_id), 0, end)
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            partition, entry_id = ref.split("/", 1)
            pipe.xrange(self.keys.stream(int(partition)), entry_id, entry_id)
        events = []
        for ref, found in zip(refs, pipe.execute() if refs else [], strict=True):
            for entry_id, fields in found:
                events.append(_event_view(int(ref.split("/", 1)[0]), entry_id, fields))
        return events

    def history(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """The user's latest events with each paper's id and title."""
        events = self.user_events(user_id, limit)
        papers = self.papers([ev["paper"]["id"] for ev in events])
        for ev, paper in zip(events, papers, strict=True):
            if paper and paper.get("title"):
                ev["paper"]["title"] = paper["title"]
        return events

    def seen_and_dismissed(self, user_id: str) -> tuple[dict[str, float], dict[str, float]]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrange(self.keys.user_seen(user_id), 0, -1, withscores=True)
        pipe.zrange(self.keys.user_dismissed(user_id), 0, -1, withscores=True)
        seen, dismissed = pipe.execute()
        return dict(seen), dict(dismissed)

    # -- the user's own data ------------------------------------------------------------
    def export(self, user_id: str) -> dict[str, Any]:
        """Everything Paperfeed holds about ``user_id``."""
        seen, dismissed = self.seen_and_dismissed(user_id)
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(k.user(user_id))
        for name in ("email", "sent"):
            pipe.hgetall(k.user_extra(user_id, name))
        profile, email, sent = pipe.execute()
        profile = {name: v for name, v in profile.items() if name != "token_hash"}
        return {
            "user_id": user_id,
            "profile": profile,
            "events": self.user_events(user_id),
            "seen": [{"paper_id": p, "ts": int(t)} for p, t in seen.items()],
            "dismissed": [{"paper_id": p, "ts": int(t)} for p, t in dismissed.items()],
            "email": email or None,
            "emails_sent": sent or {},
        }

    def erase(self, user_id: str, now: float | None = None) -> int:
        """Remove the user's events from the log and every key derived from them.

        Their contributions to the public aggregates (trending, counts, metadata votes) are
        taken back too. Returns the number of log entries deleted.
        """
        now = time.time() if now is None else now
        k = self.keys
        events = self.user_events(user_id)
        seen, _ = self.seen_and_dismissed(user_id)
        partition = k.partition_of(user_id)
        pipe = self.redis.pipeline(transaction=False)
        by_partition: dict[int, list[str]] = {}
        for ev in events:
            by_partition.setdefault(ev["partition"], []).append(ev["entry_id"])
            paper_key = k.paper(ev["paper"]["id"])
            pipe.hincrby(paper_key, ev["type"] + "s", -1)
        for p, entry_ids in by_partition.items():
            pipe.xdel(k.stream(p), *entry_ids)
        members = [f"e:{user_id}:{ev['id']}" for ev in events]
        members += [f"r:{user_id}:{pid}" for pid in {ev["paper"]["id"] for ev in events}]
        if members:
            pipe.zrem(k.dedupe(partition), *members)
        readers = [(pid, int(ts)) for pid, ts in seen.items()]
        for pid, _ in readers:
            pipe.hincrby(k.paper(pid), "readers", -1)
        for pid in {ev["paper"]["id"] for ev in events}:
            claim_keys = [k.paper(pid), k.paper_claims(pid), k.paper_claimants(pid)]
            self._script(self._unclaim, claim_keys, [user_id], pipe)
        if readers:
            self.queue_readers(pipe, readers, sign=-1)
        for key in k.user_keys(user_id):  # one by one: a Cluster pipeline deletes one key a call
            pipe.delete(key)
        pipe.zrem(k.users(), user_id)
        pipe.execute()
        return len(events)


_URL_TEMPLATES = {
    "arxiv": "https://arxiv.org/abs/{}",
    "doi": "https://doi.org/{}",
    "openreview": "https://openreview.net/forum?id={}",
    "acl": "https://aclanthology.org/{}/",
    "pwc": "https://paperswithcode.com/paper/{}",
}


def paper_url(paper_id: str) -> str | None:
    """The public address of a paper, rebuilt from its canonical id."""
    namespace, _, local = paper_id.partition(":")
    template = _URL_TEMPLATES.get(namespace)
    return template.format(local) if template and local else None


def _paper_view(paper_id: str, raw: Mapping[str, str]) -> dict[str, Any]:
    view: dict[str, Any] = {"id": paper_id}
    for name in ("title", "url", "abstract"):
        if raw.get(name):
            view[name] = raw[name]
    view["authors"] = json.loads(raw["authors"]) if raw.get("authors") else []
    for name in ("readers", "opens", "clicks", "dismisses"):
        view[name] = max(0, int(raw.get(name, 0)))
    if raw.get("first_seen"):
        view["first_seen"] = int(float(raw["first_seen"]))
    return view


def _event_view(partition: int, entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    return {
        "partition": partition,
        "id": fields["e"],
        "type": fields["k"],
        "paper": {"id": fields["p"]},
        "ts": int(fields["ts"]),
        "site": fields.get("s", ""),
        "entry_id": entry_id,
        "received_ms": int(entry_id.split("-", 1)[0]),
    }
