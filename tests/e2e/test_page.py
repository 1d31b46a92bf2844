"""The public trending page in headless Chromium: the real app (werkzeug in a thread) on the
real Redis, with the seed catalogue and hostile titles; structure, keyboard switch, no script
from catalogue text, no horizontal overflow, and screenshots at phone and desktop widths
(``docs/page-phone.png``, ``docs/page-desktop.png``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import REDIS_URL, REPO, ApiServer, find_chromium

pytestmark = pytest.mark.e2e

SEED = REPO.parent / "shared" / "data" / "seed-trending-papers" / "trending-papers.txt"
HOSTILE = [
    {
        "id": "arxiv:2611.00001",
        "title": "<script>window.pwned=1</script>Script in a title",
        "abstract": "<script>window.pwned=2</script> An abstract with markup <b>bold</b>.",
        "authors": ["<i>Mallory</i>", "Eve"],
    },
    {
        "id": "arxiv:2611.00002",
        "title": '<img src=x onerror="window.imgPwned=1"> Image in a title',
        "abstract": "<style>body{display:none}</style> Styles must stay text.",
    },
    {
        "id": "arxiv:2611.00003",
        "title": "Unbroken" + "A" * 300,
        "abstract": "B" * 2000,
    },
    {
        "id": "arxiv:2611.00004",
        "title": "\u202etxet tfel-ot-thgir \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
        "abstract": "\u0647\u0630\u0627 \u0645\u0644\u062e\u0635 " * 20,
        "authors": ["\u05d3\u05e0\u05d4 \u05db\u05d4\u05df"],
    },
]
RISING = {
    "id": "arxiv:2611.00005",
    "title": "A Paper Everyone Opened This Morning",
    "abstract": "Readers arrive faster today than over the week, so the page marks it rising. " * 6,
    "authors": ["Grace Hopper", "Katherine Johnson", "Edsger W. Dijkstra"],
}
SHOTS = {"desktop": (1280, 900), "phone": (375, 740)}


def serve_catalogue(prefix: str, hostile: bool) -> ApiServer:
    """The real app on the seed catalogue (and, with ``hostile``, the hostile titles on top)."""
    from recommender.settings import Settings
    from server.app import create_app
    from server.commands.import_papers import import_rows, read_seed

    settings = Settings.from_env(
        {}, key_prefix=prefix, redis_url=REDIS_URL, rate_limit_enabled=False
    )
    app = create_app(settings)
    store = app.extensions["paperfeed"].store
    import_rows(store, read_seed(SEED), readers=5)
    if hostile:
        import_rows(store, iter(HOSTILE), readers=9)  # more readers: on the first page
    import_rows(store, iter([RISING]), readers=0)
    pipe = store.redis.pipeline(transaction=False)
    store.queue_readers(pipe, [(RISING["id"], int(time.time()) - 60)] * 12, sign=1)
    pipe.execute()
    server = ApiServer(app)
    server.start()
    return server


@pytest.fixture
def page_server(e2e_prefix: str, redis_conn: Any) -> Iterator[ApiServer]:
    server = serve_catalogue(e2e_prefix, hostile=True)
    yield server
    server.stop()


@pytest.fixture
def seed_server(e2e_prefix: str, redis_conn: Any) -> Iterator[ApiServer]:
    server = serve_catalogue(e2e_prefix, hostile=False)
    yield server
    server.stop()


@pytest.fixture
def chromium(playwright_session: Any) -> Iterator[Any]:
    browser = playwright_session.chromium.launch(
        executable_path=find_chromium(),
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    yield browser
    browser.close()


@pytest.mark.parametrize("shot", list(SHOTS))
def test_page_in_chromium(chromium: Any, page_server: ApiServer, shot: str) -> None:
    width, height = SHOTS[shot]
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    response = page.goto(f"{page_server.url}/?window=week")
    assert response is not None and response.status == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]

    assert page.locator("h1").count() == 1
    assert page.locator("h1").inner_text() == "Trending papers this week"
    for landmark in ("header", "main", "footer"):
        assert page.locator(landmark).count() == 1
    items = page.locator("ol.papers > li")
    assert items.count() == 20
    assert page.locator("ol.papers > li h2").count() == 20
    assert page.locator("ol.papers h2 a[href^='https://arxiv.org/abs/']").count() >= 1
    assert page.locator(".readers").first.inner_text().startswith("≈ ")
    assert "Get trending papers in your email inbox once a day!" in page.inner_text("main")

    # nothing from a hostile catalogue text ran or became markup
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("window.imgPwned") is None
    assert page.locator("main img, main script, main style, main i").count() == 0
    script_title = page.locator("h2", has_text="Script in a title")
    assert "<script>window.pwned=1</script>" in script_title.inner_text()
    image_title = page.locator("h2", has_text="Image in a title")
    assert '<img src=x onerror="window.imgPwned=1">' in image_title.inner_text()
    # long unbroken words wrap instead of widening the page
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # the switch: links, keyboard-usable, aria-current on the active window
    week = page.locator("nav.switch a[aria-current='page']")
    assert week.inner_text() == "This week"
    today = page.locator("nav.switch a", has_text="Today")
    today.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/?window=day")
    assert page.locator("h1").inner_text() == "Trending papers today"
    assert page.locator("nav.switch a[aria-current='page']").inner_text() == "Today"

    # the abstract opens from the keyboard too
    details = page.locator("details.abstract").first
    details.locator("summary").focus()
    page.keyboard.press("Enter")
    assert details.get_attribute("open") is not None
    details.locator("summary").focus()
    page.keyboard.press("Enter")

    # a rising badge on a paper read several times in the last hours
    assert page.locator(".rising").count() >= 1

    assert not errors, errors
    context.close()


@pytest.mark.parametrize("shot", sorted(SHOTS))
def test_page_screenshot_of_the_seed_catalogue(
    chromium: Any, seed_server: ApiServer, shot: str
) -> None:
    """The picture in docs/: today's page on the seed catalogue of 276 papers."""
    width, height = SHOTS[shot]
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(f"{seed_server.url}/?window=day")
    assert page.locator("ol.papers > li").count() == 20
    assert page.locator(".rising").count() >= 1
    page.screenshot(path=str(REPO / "docs" / f"page-{shot}.png"))
    context.close()


def test_email_links_in_chromium(chromium: Any, mail_app: Any, mailbox: Any, tmp_path: Any) -> None:
    """Confirm and unsubscribe from the links of real emails, as a reader's browser does:
    pages under the page's CSP, and the unsubscribe button a plain form post (no script)."""
    from urllib.parse import urlsplit

    from recommender import digest

    collector, _ = mailbox
    client = mail_app.test_client()
    user = client.post("/v1/users").get_json()
    auth = {"Authorization": f"Bearer {user['token']}"}
    assert (
        client.post("/v1/me/email", json={"address": "ada@example.org"}, headers=auth).status_code
        == 202
    )
    text = collector.messages[0].get_body(("plain",)).get_content()
    confirm = next(word for word in text.split() if "/v1/email/confirm" in word)
    server = ApiServer(mail_app)
    server.start()
    try:
        page = chromium.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        parts = urlsplit(confirm)
        page.goto(f"{server.url}{parts.path}?{parts.query}")
        assert page.locator("h1").inner_text() == "Subscribed"
        st = mail_app.extensions["paperfeed"]
        assert st.redis.zscore(st.keys.subscribers(), user["user_id"]) is not None

        link = digest.unsubscribe_link(mail_app.extensions["paperfeed"].settings, user["user_id"])
        parts = urlsplit(link)
        page.goto(f"{server.url}{parts.path}?{parts.query}")
        assert page.locator("h1").inner_text() == "Unsubscribe?"
        assert st.redis.zscore(st.keys.subscribers(), user["user_id"]) is not None  # GET only
        page.screenshot(path=str(tmp_path / "unsubscribe.png"))
        page.locator("button", has_text="Unsubscribe").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("h1:text('Unsubscribed')")
        assert st.redis.zscore(st.keys.subscribers(), user["user_id"]) is None
        assert digest.subscription(st.redis, st.keys, user["user_id"]) is None
        assert not errors, errors
        page.close()
    finally:
        server.stop()
