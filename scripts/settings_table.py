"""Print the README's settings table from ``Settings`` (or rewrite it in place with --write)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommender.settings import Settings

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, default, doc in Settings.table():
        shown = f"`{default}`" if default else "(unset)"
        escaped = doc.replace("|", "\\|")
        rows.append(f"| `{name}` | {shown} | {escaped} |")
    return "\n".join(rows)


def main() -> int:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text()
    block = f"{BEGIN}\n{table()}\n{END}"
    if "--write" in sys.argv:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        readme.write_text(text)
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
