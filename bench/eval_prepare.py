"""Convert the shared evaluation data sets into the ``user,item,ts`` CSV that ``paperfeed evaluate``
reads, written to a directory outside the repository (the data must not be committed).

- ``globo.csv``: Globo.com news clicks, 1-8 October 2017 (``click_timestamp`` ms -> s), sorted by
  time.
- ``citeulike-a.csv``: CiteULike user libraries (no timestamps: ``ts`` is 0 for every row; evaluate
  it with ``--split random``).

Usage: ``python bench/eval_prepare.py [OUT_DIR]`` (default ``/tmp/paperfeed-eval``).
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/data")


def globo(out: Path) -> Path:
    """Write ``globo.csv`` (time-sorted) and return its path."""
    src = DATA / "globo-news-clicks-early" / "clicks-2017-10-01-to-08.csv.gz"
    with gzip.open(src, "rt", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        cu, ci, ct = (header.index(c) for c in ("user_id", "click_article_id", "click_timestamp"))
        rows = [(r[cu], r[ci], int(r[ct])) for r in reader]
    ts_ms = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
    order = np.argsort(ts_ms, kind="stable")
    path = out / "globo.csv"
    with path.open("w", newline="") as fh:
        fh.write("user,item,ts\n")
        fh.writelines(
            f"{rows[i][0]},{rows[i][1]},{ts_ms[i] / 1000.0:.3f}\n" for i in order.tolist()
        )
    return path


def citeulike(out: Path) -> Path:
    """Write ``citeulike-a.csv`` (one row per saved article, ``ts`` 0) and return its path."""
    path = out / "citeulike-a.csv"
    lines = (DATA / "citeulike-a" / "users.dat").read_text().splitlines()
    with path.open("w", newline="") as fh:
        fh.write("user,item,ts\n")
        for user, line in enumerate(lines):
            for item in line.split()[1:]:
                fh.write(f"{user},{item},0\n")
    return path


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "/tmp/paperfeed-eval")
    out.mkdir(parents=True, exist_ok=True)
    for build in (globo, citeulike):
        print(build(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
