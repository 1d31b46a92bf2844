"""The public trending page at ``/`` through the Flask test client: HTML, escaping of hostile
catalogue text, the today / this week switch, paging, the empty state and its own CSP."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from server.commands.import_papers import demo_id, import_rows
from server.web import readers_label, teaser

pytestmark = pytest.mark.integration

HOSTILE = [
    {"title": "<script>window.pwned=1</script>Script title", "abstract": "x"},
    {"title": "<img src=x onerror=alert(1)> Image title", "abstract": "<b>bold</b> abstract"},
]


def seed(app: Any, rows: list[dict[str, Any]], readers: int = 3) -> None:
    import_rows(app.extensions["paperfeed"].store, iter(rows), readers=readers)


def test_empty_catalogue_says_nothing_is_trending(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "Nothing trending yet" in body
    assert body.count("<h1") == 1


def test_page_lists_papers_with_links_readers_and_its_own_csp(app: Any, client: Any) -> None:
    seed(
        app,
        [
            {
                "id": "arxiv:2401.00001",
                "title": "Attention Is Still All You Need",
                "abstract": "We revisit attention. " * 30,
                "authors": ["Ada Lovelace", "Alan Turing"],
            }
        ],
        readers=4,
    )
    response = client.get("/")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'none'" in csp
    assert "style-src 'self'" in csp
    assert '<a href="https://arxiv.org/abs/2401.00001"' in body
    assert "Attention Is Still All You Need" in body
    assert "Ada Lovelace, Alan Turing" in body
    assert re.search(r"≈ \d+ readers", body)
    assert "<details" in body and "Show the whole abstract" in body
    assert "<header" in body and "<main" in body and "<footer" in body
    assert "Get trending papers in your email inbox once a day!" in body
    assert "<script" not in body
    css = client.get("/static/paperfeed.css")
    assert css.status_code == 200 and css.mimetype == "text/css"


def test_hostile_catalogue_text_is_escaped(app: Any, client: Any) -> None:
    seed(app, HOSTILE)
    body = client.get("/").get_data(as_text=True)
    assert "<script>window.pwned" not in body
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;Script title" in body
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "&lt;b&gt;bold&lt;/b&gt;" in body
    assert 'dir="auto"' in body


def test_window_switch_marks_the_current_window(app: Any, client: Any) -> None:
    seed(app, [{"id": "arxiv:2401.00002", "title": "A paper"}])
    day = client.get("/?window=day").get_data(as_text=True)
    week = client.get("/?window=week").get_data(as_text=True)
    assert "Trending papers today" in day
    assert "Trending papers this week" in week
    assert re.search(r'href="/\?window=day" aria-current="page"', day)
    assert re.search(r'href="/\?window=week" aria-current="page"', week)
    assert not re.search(r'href="/\?window=week" aria-current', day)
    # an unknown window falls back to today rather than failing
    assert "Trending papers today" in client.get("/?window=<x>").get_data(as_text=True)


def test_paging(app: Any, client: Any) -> None:
    rows = [{"title": f"Paper number {i}"} for i in range(25)]
    seed(app, rows, readers=5)
    first = client.get("/").get_data(as_text=True)
    second = client.get("/?page=2").get_data(as_text=True)
    assert first.count('class="paper"') == 20
    assert second.count('class="paper"') == 5
    assert 'rel="next"' in first and 'rel="prev"' in second
    assert '<ol class="papers" start="21">' in second
    beyond = client.get("/?page=9").get_data(as_text=True)
    assert "No papers on this page" in beyond
    assert client.get("/?page=abc").status_code == 200


def test_rising_badge(app: Any, client: Any) -> None:
    store = app.extensions["paperfeed"].store
    now = time.time()
    pid = demo_id("Hot today")
    import_rows(store, iter([{"title": "Hot today"}]), readers=0)
    store.queue_readers(
        pipe := store.redis.pipeline(transaction=False), [(pid, int(now))] * 6, sign=1
    )
    pipe.execute()
    body = client.get("/").get_data(as_text=True)
    assert "Rising" in body


def test_helpers() -> None:
    assert readers_label(0.2) == "< 1 reader"
    assert readers_label(1.2) == "≈ 1 reader"
    assert readers_label(11.6) == "≈ 12 readers"
    assert teaser("word " * 100, 50).endswith("…")
    assert len(teaser("x" * 1000, 50)) == 51


def test_unreachable_redis_is_an_html_503(prefix: str) -> None:
    from recommender.redisconn import connect
    from recommender.settings import Settings
    from server.app import create_app
    from tests.mailbox import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings.from_env({}, redis_url=dead, key_prefix=prefix, redis_timeout_s=0.3)
    response = create_app(settings, redis=connect(dead, 0.3)).test_client().get("/")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "Retry-After" in response.headers
    assert "Temporarily unavailable" in response.get_data(as_text=True)
