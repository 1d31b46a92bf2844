"""``paperfeed models``: list the stored model versions, or activate one (rollback)."""

from __future__ import annotations

import argparse
import sys

from recommender import modelstore
from recommender.keys import Keys
from recommender.redisconn import connect
from recommender.settings import Settings

NAME = "models"
HELP = "List stored model versions with their metrics; --activate VERSION to switch (rollback)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``paperfeed models``."""
    parser.add_argument("--activate", metavar="VERSION", help="make VERSION the serving model")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the table (after activating, if asked); 1 when the version does not exist."""
    if not settings.redis_url:
        print("paperfeed models: REDIS_URL is not set", file=sys.stderr)
        return 2
    redis = connect(settings.redis_url, timeout_s=settings.redis_timeout_s)
    keys = Keys(settings.key_prefix, settings.stream_partitions)
    if args.activate:
        try:
            modelstore.activate(redis, keys, args.activate)
        except modelstore.ModelNotFound:
            print(f"paperfeed models: no model version {args.activate}", file=sys.stderr)
            return 1
    print(format_table(modelstore.list_versions(redis, keys)))
    return 0


def format_table(versions: list[dict]) -> str:
    """One row per version, newest first; ``*`` marks the active one."""
    if not versions:
        return "no models yet (run `paperfeed retrain`)"
    rows = [("", "version", "recall@20", "ndcg@20", "users", "papers", "seconds", "gate")]
    for v in versions:
        m = (v.get("metrics") or {}).get("model") or {}
        rows.append(
            (
                "*" if v["active"] else "",
                v["version"],
                _f(m.get("recall@20")),
                _f(m.get("ndcg@20")),
                str(v.get("users", "")),
                str(v.get("papers", "")),
                f"{v.get('duration_s', 0):.1f}",
                str(v.get("gate", "")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
