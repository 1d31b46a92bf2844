"""``paperfeed import-papers FILE``: load papers into the catalogue.

Reads JSON Lines (one object a line with ``id`` and ``title``, optional ``abstract``, ``url``,
``authors``) or, with ``--format seed``, the text of a trending-papers page
(``shared/data/seed-trending-papers``: two banner lines, then title and abstract lines in turn,
the first title glued to the word "Subscribe"). Papers without an id get a stable
``demo:<hash of the title>`` id. ``--readers N`` gives every imported paper up to N synthetic
readers spread over the last days, so a demo shows a trending list at once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recommender.keys import Keys
from recommender.paperid import canonical_paper_id
from recommender.redisconn import connect
from recommender.settings import Settings
from recommender.store import EventStore, paper_url

NAME = "import-papers"
HELP = "Load a catalogue of papers from JSON Lines or the seed trending-papers text."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--format",
        choices=("jsonl", "seed"),
        default=None,
        help="Input format (default: by extension: .jsonl/.json -> jsonl).",
    )
    parser.add_argument(
        "--readers",
        type=int,
        default=0,
        help="Synthetic readers per paper for a demo trending list.",
    )


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from None
            if not isinstance(row, dict) or not row.get("title"):
                raise ValueError(f"{path}:{number}: needs an object with a title")
            yield row


def read_seed(path: Path) -> Iterator[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").split("\n")[2:]
    if lines and lines[0].startswith("Subscribe"):
        lines[0] = lines[0][len("Subscribe") :]
    for title, abstract in zip(lines[0::2], lines[1::2], strict=False):
        if title.strip():
            yield {"title": title.strip(), "abstract": abstract.strip()}


def demo_id(title: str) -> str:
    return "demo:" + hashlib.sha256(title.encode()).hexdigest()[:12]


def import_rows(
    store: EventStore, rows: Iterator[dict[str, Any]], readers: int = 0, now: float | None = None
) -> int:
    """Write ``rows`` into the catalogue; returns how many papers were imported."""
    now = time.time() if now is None else now
    keys = store.keys
    count = 0
    pipe = store.redis.pipeline(transaction=False)
    synthetic: list[tuple[str, int]] = []
    for row in rows:
        pid = canonical_paper_id(str(row["id"])) if row.get("id") else demo_id(row["title"])
        if pid is None:
            raise ValueError(f"not a paper id: {row['id']!r}")
        fields = {
            "title": " ".join(str(row["title"]).split()),
            "url": row.get("url") or paper_url(pid) or "",
            "abstract": str(row.get("abstract") or ""),
            "authors": json.dumps(list(row.get("authors") or []), ensure_ascii=False),
        }
        pipe.hset(keys.paper(pid), mapping={k: v for k, v in fields.items() if v})
        pipe.hsetnx(keys.paper(pid), "first_seen", int(now))
        pipe.zadd(keys.papers(), {pid: int(now)}, nx=True)
        n = readers - (count % max(readers, 1)) if readers else 0
        for j in range(n):
            synthetic.append((pid, int(now - 3600 * (1 + j * 7 % 96))))
        if n:
            pipe.hincrby(keys.paper(pid), "readers", n)
        count += 1
        if len(pipe) > 5000:
            pipe.execute()
    if synthetic:
        store.queue_readers(pipe, synthetic, sign=1)
    pipe.execute()
    return count


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.redis_url:
        print("paperfeed: set REDIS_URL (the address `paperfeed up` prints)", file=sys.stderr)
        return 2
    fmt = args.format or ("seed" if args.file.suffix == ".txt" else "jsonl")
    rows = read_seed(args.file) if fmt == "seed" else read_jsonl(args.file)
    redis = connect(settings.redis_url, settings.redis_timeout_s)
    store = EventStore(redis, settings, Keys(settings.key_prefix, settings.stream_partitions))
    try:
        count = import_rows(store, rows, readers=args.readers)
    except ValueError as exc:
        print(f"paperfeed: {exc}", file=sys.stderr)
        return 1
    print(f"imported {count} papers")
    return 0
