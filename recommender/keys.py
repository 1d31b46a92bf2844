"""Every Redis key name Paperfeed uses, built from one configurable prefix.

Keys that one atomic operation touches together share a Redis Cluster hash tag: a user's keys
carry ``{u:<user id>}``, an event-log partition's stream and de-duplication set carry
``{log:<n>}``, the trending scores and their epoch carry ``{trending}``. The prefix itself never
holds a tag, so keys spread over the cluster's slots. No other module spells a key.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under ``prefix``; one instance per app (tests use a unique prefix each)."""

    prefix: str
    partitions: int = 1

    # -- users ----------------------------------------------------------------------------
    def users(self) -> str:
        """Sorted set: user id -> creation time (every registered user)."""
        return f"{self.prefix}:users"

    def user(self, user_id: str) -> str:
        """Hash: token hash, creation time, preferences."""
        return f"{self.prefix}:{{u:{user_id}}}:user"

    def user_seen(self, user_id: str) -> str:
        """Sorted set: paper id -> last time the user opened or clicked it."""
        return f"{self.prefix}:{{u:{user_id}}}:seen"

    def user_dismissed(self, user_id: str) -> str:
        """Sorted set: paper id -> time the user said "not interested"."""
        return f"{self.prefix}:{{u:{user_id}}}:dismissed"

    def user_entries(self, user_id: str) -> str:
        """Sorted set: "<partition>/<stream entry id>" -> event time (history, erasure)."""
        return f"{self.prefix}:{{u:{user_id}}}:entries"

    def user_keys(self, user_id: str) -> list[str]:
        """Every per-user key (erasure deletes them all)."""
        return [
            self.user(user_id),
            self.user_seen(user_id),
            self.user_dismissed(user_id),
            self.user_entries(user_id),
            *[f"{self.prefix}:{{u:{user_id}}}:{extra}" for extra in USER_EXTRA_KEYS],
        ]

    def user_extra(self, user_id: str, name: str) -> str:
        """A further per-user key registered in ``USER_EXTRA_KEYS`` (erased with the user)."""
        if name not in USER_EXTRA_KEYS:
            raise KeyError(f"unregistered per-user key {name!r}")
        return f"{self.prefix}:{{u:{user_id}}}:{name}"

    # -- event log ------------------------------------------------------------------------
    def partition_of(self, user_id: str) -> int:
        """The event-log partition a user's events go to (stable across processes)."""
        return zlib.crc32(user_id.encode()) % self.partitions

    def stream(self, partition: int) -> str:
        """Stream: the durable, append-only event log (one per partition)."""
        return f"{self.prefix}:{{log:{partition}}}:stream"

    def dedupe(self, partition: int) -> str:
        """Sorted set: "<user id>:<event id>" -> arrival time, so a retried event counts once."""
        return f"{self.prefix}:{{log:{partition}}}:dedupe"

    def streams(self) -> list[str]:
        return [self.stream(p) for p in range(self.partitions)]

    # -- catalogue and trending -----------------------------------------------------------
    def paper(self, paper_id: str) -> str:
        """Hash: the catalogue entry of one paper (title, url, abstract, authors, counts)."""
        return f"{self.prefix}:{{p:{paper_id}}}:paper"

    def papers(self) -> str:
        """Sorted set: paper id -> first time seen."""
        return f"{self.prefix}:papers"

    def paper_claims(self, paper_id: str) -> str:
        """Hash: metadata digest -> distinct readers who sent it; ``m:<digest>`` -> the JSON."""
        return f"{self.prefix}:{{p:{paper_id}}}:claims"

    def paper_claimants(self, paper_id: str) -> str:
        """Hash: user id -> digest of the metadata that reader sent (one vote each)."""
        return f"{self.prefix}:{{p:{paper_id}}}:claimants"

    def trending(self) -> str:
        """Sorted set: paper id -> decayed reader count, in units of the epoch (the ``main``
        window, ``PAPERFEED_TRENDING_HALF_LIFE_H``; the page's views live in each paper's
        entry and are ranked into :meth:`trending_view`)."""
        return f"{self.prefix}:{{trending}}:scores"

    def trending_epoch(self) -> str:
        """String: the Unix time the main window's scores are expressed relative to."""
        return f"{self.prefix}:{{trending}}:epoch"

    def trending_view(self, window: str) -> str:
        """Sorted set: a ranking of one page view (``day``, ``week``): paper id -> decayed
        readers at the ranking's time, rebuilt from the papers' entries once it is stale."""
        return f"{self.prefix}:{{trending}}:view:{window}"

    def trending_view_at(self, window: str) -> str:
        """String: the Unix time :meth:`trending_view` was ranked at."""
        return f"{self.prefix}:{{trending}}:view:{window}:at"

    def legacy_trending_view(self, window: str) -> tuple[str, str]:
        """The sorted set and epoch string that held a page view before 2026-11-28, when every
        reader updated them; :meth:`EventStore.migrate_legacy_views` carries them over once."""
        return (
            f"{self.prefix}:{{trending}}:scores:{window}",
            f"{self.prefix}:{{trending}}:epoch:{window}",
        )

    def legacy_trending_view_claimed(self, window: str) -> str:
        """Sorted set: a legacy view being carried over (what is left of it)."""
        return f"{self.prefix}:{{trending}}:scores:{window}:migrating"

    def legacy_trending_views_lock(self) -> str:
        """String: held (with an expiry) by the process carrying the legacy views over."""
        return f"{self.prefix}:{{trending}}:scores:migrating:lock"

    def trending_view_building(self, window: str, token: str) -> str:
        """Sorted set: a ranking of a view being built (expires unless swapped in)."""
        return f"{self.prefix}:{{trending}}:view:{window}:building:{token}"

    def trending_view_lock(self, window: str) -> str:
        """String: held (with an expiry) by the process re-ranking a view."""
        return f"{self.prefix}:{{trending}}:view:{window}:lock"

    def readiness_probe(self) -> str:
        """String: written by ``/readyz`` (with a short expiry) to check that Redis takes
        writes; beside the trending scores, which nearly every batch of events writes."""
        return f"{self.prefix}:{{trending}}:readyz"

    # -- models and jobs (recommender) ----------------------------------------------------
    # Each family shares one hash tag ({compact}, {models}, {train}) because its updates are
    # transactions over several of its keys; on a Cluster each family lives on one node.
    def ns(self, *parts: str) -> str:
        """A key under the prefix for the recommender's own namespaces (models, jobs, locks)."""
        return ":".join((self.prefix, *parts))

    def compact_manifest(self) -> str:
        """String (JSON): the compacted event arrays' segments, vocabulary and stream offsets."""
        return f"{self.prefix}:{{compact}}:manifest"

    def compact_blob(self, blob_id: str) -> str:
        """Hash: one compacted segment's or vocabulary's numpy arrays, chunked."""
        return f"{self.prefix}:{{compact}}:blob:{blob_id}"

    def compact_pending(self) -> str:
        """Set: blob keys written by a compaction that has not yet swapped its manifest."""
        return f"{self.prefix}:{{compact}}:pending"

    def compact_tombstones(self) -> str:
        """Set: erased user ids the next compaction must drop from the compacted arrays."""
        return f"{self.prefix}:{{compact}}:tombstones"

    def compact_lock(self) -> str:
        """String: the lock that keeps compactions single-flight."""
        return f"{self.prefix}:{{compact}}:lock"

    def model(self, version: str) -> str:
        """Hash: one model version (metadata JSON plus chunked numpy arrays)."""
        return f"{self.prefix}:{{models}}:model:{version}"

    def model_versions(self) -> str:
        """Sorted set: model version -> time it was stored."""
        return f"{self.prefix}:{{models}}:versions"

    def model_active(self) -> str:
        """String: the model version that serving uses (one SET flips it)."""
        return f"{self.prefix}:{{models}}:active"

    def model_fresh_items(self, version: str) -> str:
        """Hash: vectors of papers first seen after the version was trained (chunked arrays)."""
        return f"{self.prefix}:{{models}}:model:{version}:fresh"

    def train_lock(self) -> str:
        """String: the single-flight training lock (held with an expiry, renewed while running)."""
        return f"{self.prefix}:{{train}}:lock"

    def train_job(self) -> str:
        """String: the id of the training job that holds or is about to hold the lock."""
        return f"{self.prefix}:{{train}}:job"

    def train_last_success(self) -> str:
        """String: Unix time of the last successful training run (the clock's catch-up)."""
        return f"{self.prefix}:{{train}}:last_success"

    def train_queue(self) -> str:
        """The RQ queue name of training jobs (RQ keeps its own key names)."""
        return f"{self.prefix}-train"

    # -- co-reading ("readers like you") ---------------------------------------------------
    def coread(self, version: str) -> str:
        """Hash: one co-reading table (metadata JSON plus chunked numpy arrays)."""
        return f"{self.prefix}:{{coread}}:table:{version}"

    def coread_versions(self) -> str:
        """Sorted set: co-reading table version -> time it was built."""
        return f"{self.prefix}:{{coread}}:versions"

    def coread_active(self) -> str:
        """String: the co-reading table that serving uses (one SET flips it)."""
        return f"{self.prefix}:{{coread}}:active"

    def coread_lock(self) -> str:
        """String: the lock that keeps co-reading rebuilds single-flight."""
        return f"{self.prefix}:{{coread}}:lock"

    def coread_stale(self) -> str:
        """String: set when the table must be rebuilt before its time (an erasure)."""
        return f"{self.prefix}:{{coread}}:stale"

    def coread_queue(self) -> str:
        """The RQ queue name of co-reading rebuilds (worked before the training queue)."""
        return f"{self.prefix}-coread"

    # -- serving ----------------------------------------------------------------------------
    def served_erasures(self) -> str:
        """Sorted set: digest of an erased user's id -> erasure time, kept for as long as a
        web process may serve a stale list; every process drops those users' lists from its
        outage cache (``server.api.recommendations.LastServed``)."""
        return f"{self.prefix}:served:erasures"

    # -- the daily email ------------------------------------------------------------------
    def subscribers(self) -> str:
        """Sorted set: user id -> time the address was confirmed (confirmed subscribers only;
        the address itself lives only in the user's ``user_extra(user_id, "email")`` hash)."""
        return f"{self.prefix}:email:subscribers"


# Per-user keys added by later features; each is deleted by ``DELETE /v1/me``.
USER_EXTRA_KEYS: tuple[str, ...] = ("email", "sent")
