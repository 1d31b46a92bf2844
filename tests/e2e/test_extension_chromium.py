"""The extension in headless Chromium against the real app and Redis: capture on the real arXiv
listing page, delivery through an outage and a stopped service worker, the popup, and erasure."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import ApiServer, Browser, launch, wait_until

pytestmark = pytest.mark.e2e

LISTING = "https://arxiv.org/list/astro-ph/new"
TITLES = {
    "arxiv:1406.3020": (
        "Exoplanet population inference and the abundance of Earth analogs from noisy, "
        "incomplete catalogs"
    ),
    "arxiv:1406.3023": (
        "Driving the Growth of the Earliest Supermassive Black Holes with Major Mergers of "
        "Host Galaxies"
    ),
    "arxiv:1406.2854": "Observational Constraints on EoS parameters of Emergent Universe",
}
EVENT_FIELDS = {"id", "type", "paper", "ts", "site"}


def history(api: ApiServer, token: str) -> list[dict[str, Any]]:
    return api.client(token).get("/v1/me/history?limit=1000")["events"]


def click_and_return(page: Any, selector: str, url_glob: str) -> None:
    page.click(selector)
    page.wait_for_url(url_glob)
    page.go_back()
    page.wait_for_url(LISTING)


def test_listing_clicks_and_page_opens_land_in_the_event_log(
    browser: Browser, api: ApiServer
) -> None:
    page = browser.context.new_page()
    page.goto(LISTING)
    page.click('a[href="/abs/1406.3020"]')
    page.wait_for_url("**/abs/1406.3020")
    page.wait_for_timeout(500)
    assert browser.queue() == {}, "nothing may be captured before consent"

    auth = browser.consent()
    page.goto(LISTING)
    click_and_return(page, 'a[href="/abs/1406.3020"]', "**/abs/1406.3020")
    click_and_return(page, 'a[href="/pdf/1406.3023"]', "**/pdf/1406.3023")
    page.click('a[href="/abs/1406.2854"]')
    page.wait_for_url("**/abs/1406.2854")
    page.goto("https://arxiv.org/abs/2004.10162v1")

    def delivered() -> list[dict[str, Any]] | None:
        events = history(api, auth["token"])
        clicks = {e["paper"]["id"] for e in events if e["type"] == "click"}
        opens = {e["paper"]["id"] for e in events if e["type"] == "open"}
        return events if set(TITLES) <= clicks and "arxiv:2004.10162" in opens else None

    events = wait_until(delivered, timeout=15, what="clicks and the open in /v1/me/history")
    clicks = [e for e in events if e["type"] == "click"]
    assert sorted(e["paper"]["id"] for e in clicks) == sorted(TITLES), (
        "one click each, nothing else"
    )
    for e in clicks:
        assert e["paper"]["title"] == TITLES[e["paper"]["id"]]
        assert e["site"] == "arxiv.org"
    (opened,) = [e for e in events if e["paper"]["id"] == "arxiv:2004.10162"]
    assert opened["paper"]["title"] == (
        "EMPIR: Ensembles of Mixed Precision Deep Networks for Increased Robustness against "
        "Adversarial Attacks"
    )
    wait_until(lambda: browser.queue() == {}, what="an empty queue")
    assert browser.storage()["stats"]["sent"] == len(events)


def test_clicks_during_an_outage_are_delivered_exactly_once(
    browser: Browser, api: ApiServer
) -> None:
    auth = browser.consent()
    api.stop()
    page = browser.context.new_page()
    page.goto(LISTING)
    click_and_return(page, 'a[href="/abs/1406.3020"]', "**/abs/1406.3020")
    page.click('a[href="/abs/1406.3023"]')
    page.wait_for_url("**/abs/1406.3023")

    # two clicks and the two paper pages they opened
    queued = wait_until(
        lambda: (q := browser.queue()) and len(q) >= 4 and q, what="4 queued events"
    )
    assert browser.storage()["stats"]["lastError"] == "network error"
    for event in queued.values():  # the wire format, and nothing about the page the user was on
        assert set(event) == EVENT_FIELDS
        assert uuid.UUID(event["id"]).version == 4
        assert isinstance(event["ts"], int)
        assert "list" not in json.dumps(event)
        assert event["paper"]["url"].startswith("https://arxiv.org/abs/")
    assert sorted(e["paper"]["id"] for e in queued.values() if e["type"] == "click") == [
        "arxiv:1406.3020",
        "arxiv:1406.3023",
    ]

    api.start()
    browser.worker.evaluate("chrome.alarms.create('pf-retry', {when: Date.now()})")
    wait_until(lambda: browser.queue() == {}, what="the queue to drain")
    ids = [e["id"] for e in history(api, auth["token"])]
    assert sorted(ids) == sorted(e["id"] for e in queued.values())

    # the same event sent again (a retry after a lost 202) is not counted twice
    key, event = next(iter(queued.items()))
    browser.worker.evaluate("([k, e]) => chrome.storage.local.set({[k]: e})", [key, event])
    wait_until(lambda: browser.queue() == {}, what="the resend")
    assert sorted(e["id"] for e in history(api, auth["token"])) == sorted(ids)


def test_a_stopped_service_worker_loses_nothing(browser: Browser, api: ApiServer) -> None:
    auth = browser.consent()
    api.stop()
    page = browser.context.new_page()
    page.goto(LISTING)
    page.click('a[href="/abs/1406.3020"]')
    page.wait_for_url("**/abs/1406.3020")
    wait_until(lambda: len(browser.queue()) >= 2, what="click + open queued")
    # the failed delivery is recorded after the events are queued, not with them
    wait_until(
        lambda: browser.storage().get("backoff", {}).get("attempt", 0) >= 1,
        what="a failed delivery recorded",
    )

    browser.stop_worker(page)
    api.start()
    # a click while the worker is stopped: the page navigates away at once, so only the storage
    # write can wake the worker; the pending backoff alarm must then deliver everything
    page.go_back()
    page.wait_for_url(LISTING)
    page.click('a[href="/abs/1406.2854"]')
    page.wait_for_url("**/abs/1406.2854")

    def delivered() -> set[str] | None:
        clicks = {e["paper"]["id"] for e in history(api, auth["token"]) if e["type"] == "click"}
        return clicks if clicks == {"arxiv:1406.3020", "arxiv:1406.2854"} else None

    wait_until(delivered, timeout=20, what="both clicks after the worker restarted")
    wait_until(lambda: browser.queue() == {}, what="an empty queue")


def seed_catalogue(api: ApiServer) -> list[str]:
    """Another reader's clicks, so that there is something trending; one title is hostile."""
    reader = api.app.test_client().post("/v1/users").get_json()
    now = int(time.time())
    papers = [
        ("arxiv:2401.00001", "A perfectly normal paper"),
        ("arxiv:2401.00002", '<img src=x onerror="document.body.dataset.pwned=1">Hostile title'),
        ("arxiv:2401.00003", "Another good read"),
    ]
    api.client(reader["token"]).post_events(
        [
            {
                "id": str(uuid.uuid4()),
                "type": "click",
                "paper": {"id": pid, "title": title},
                "ts": now,
                "site": "arxiv.org",
            }
            for pid, title in papers
        ]
    )
    return [pid for pid, _ in papers]


def test_popup_lists_recommendations_and_not_interested_removes_one(
    browser: Browser, api: ApiServer
) -> None:
    seeded = seed_catalogue(api)
    auth = browser.consent()
    page = browser.context.new_page()
    page.set_viewport_size({"width": 400, "height": 600})
    page.goto(browser.ext_url("pages/popup.html"))
    page.wait_for_selector("body[data-loaded='1']")
    notice = page.locator("#notice")
    assert notice.get_attribute("data-kind") not in {"error", "unreachable", "unauthorized"}, (
        notice.inner_text()
    )
    items = page.locator("#list li.paper")
    assert items.count() >= 1
    shown = [items.nth(i).get_attribute("data-paper-id") for i in range(items.count())]
    assert set(shown) <= set(seeded)
    # catalogue text is text: the hostile title shows literally and runs nothing
    assert page.locator("#list img").count() == 0
    assert page.evaluate("document.body.dataset.pwned") is None
    if "arxiv:2401.00002" in shown:
        assert "<img" in items.nth(shown.index("arxiv:2401.00002")).inner_text()

    first = shown[0]
    page.locator(f'li[data-paper-id="{first}"] button.dismiss').click()
    page.wait_for_selector(f'li[data-paper-id="{first}"]', state="detached")
    assert items.count() == len(shown) - 1
    wait_until(
        lambda: any(
            e["type"] == "dismiss" and e["paper"]["id"] == first
            for e in history(api, auth["token"])
        ),
        what="the dismiss event on the server",
    )

    trending = page.locator("[role=tab][data-tab=trending]")
    trending.click()
    page.wait_for_selector("body[data-tab='trending'][data-loaded='1']")
    assert page.locator("#list li.paper").count() >= 1


def redis_mentions(conn: Any, prefix: str, needle: str) -> list[str]:
    """Every key under ``prefix`` whose name or content mentions ``needle``."""
    hits = []
    raw = needle.encode()
    for key in conn.scan_iter(match=f"{prefix}:*", count=1000):
        kind = conn.type(key).decode()
        if raw in key:
            hits.append(key.decode())
            continue
        if kind == "string":
            blobs = [conn.get(key) or b""]
        elif kind == "hash":
            blobs = [b for kv in conn.hgetall(key).items() for b in kv]
        elif kind == "set":
            blobs = list(conn.smembers(key))
        elif kind == "zset":
            blobs = list(conn.zrange(key, 0, -1))
        elif kind == "list":
            blobs = list(conn.lrange(key, 0, -1))
        elif kind == "stream":
            blobs = [b for _, fields in conn.xrange(key) for kv in fields.items() for b in kv]
        else:
            blobs = []
        if any(raw in b for b in blobs):
            hits.append(f"{key.decode()} ({kind})")
    return hits


def test_delete_my_data_leaves_nothing_on_the_server(
    browser: Browser, api: ApiServer, redis_conn: Any, e2e_prefix: str
) -> None:
    auth = browser.consent()
    page = browser.context.new_page()
    page.goto(LISTING)
    page.click('a[href="/abs/1406.3020"]')
    wait_until(lambda: len(history(api, auth["token"])) >= 2, what="events on the server")
    assert redis_mentions(redis_conn, e2e_prefix, auth["userId"]), (
        "the user's data should be there first"
    )

    page.goto(browser.ext_url("pages/options.html"))
    page.wait_for_selector("body[data-loaded='1']")
    page.click("#delete")
    page.click("#delete-confirm")
    page.wait_for_selector("#data-status:has-text('deleted')")

    # what is left is the pending-erasure marker for compacted events; the nightly compaction
    # applies and removes it
    assert redis_mentions(redis_conn, e2e_prefix, auth["userId"]) in (
        [],
        [f"{e2e_prefix}:compact:tombstones (set)"],
    )
    from recommender import compaction
    from recommender.keys import Keys

    compaction.compact(redis_conn, Keys(e2e_prefix), now=time.time(), retention_s=30 * 86400)
    assert redis_mentions(redis_conn, e2e_prefix, auth["userId"]) == []
    assert redis_mentions(redis_conn, e2e_prefix, auth["token"]) == []
    response = api.app.test_client().get(
        "/v1/me/history", headers={"Authorization": f"Bearer {auth['token']}"}
    )
    assert response.status_code == 401
    local = browser.storage()
    assert set(local) <= {"settings"}, local

    # and capture is off again
    page.goto(LISTING)
    page.click('a[href="/abs/1406.3023"]')
    page.wait_for_url("**/abs/1406.3023")
    page.wait_for_timeout(500)
    assert browser.queue() == {}


def test_events_queued_before_a_browser_restart_are_delivered_after_it(
    browser: Browser, api: ApiServer, playwright_session: Any
) -> None:
    auth = browser.consent()
    api.stop()
    page = browser.context.new_page()
    page.goto(LISTING)
    page.click('a[href="/abs/1406.3023"]')
    page.wait_for_url("**/abs/1406.3023")
    queued = wait_until(
        lambda: (q := browser.queue()) and len(q) >= 2 and q, what="click + open queued"
    )
    browser.context.close()

    api.start()
    again = launch(playwright_session, browser.ext, browser.profile, api)
    try:
        assert again.ext_id == browser.ext_id
        # delivered by the retry alarm, which the worker sets again at the stored backoff's time
        # when it starts (in our runs this harness's --load-extension browser did not fire
        # runtime.onStartup, whose flush would not wait):
        # 5 s +- 20 % after the first failure, twice that per further failure if the old browser
        # lived on (a slow machine), hence the margin
        at_restart = again.storage().get("backoff")
        try:
            wait_until(lambda: again.queue() == {}, timeout=45, what="the queue to drain")
        except AssertionError as error:
            now = again.storage().get("backoff")
            alarms = again.worker.evaluate("chrome.alarms.getAll()")
            clock = again.worker.evaluate("Date.now()")
            raise AssertionError(
                f"{error}; backoff at the restart {at_restart}, now {now}; alarms {alarms} "
                f"at {clock}; queue {sorted(again.queue())}"
            ) from None
        assert sorted(e["id"] for e in history(api, auth["token"])) == sorted(
            e["id"] for e in queued.values()
        )
    finally:
        again.context.close()


def test_options_export_pause_and_site_switches(
    browser: Browser, api: ApiServer, tmp_path: Any
) -> None:
    auth = browser.consent()
    page = browser.context.new_page()
    page.goto(LISTING)
    page.click('a[href="/abs/1406.3020"]')
    page.wait_for_url("**/abs/1406.3020")
    wait_until(lambda: len(history(api, auth["token"])) >= 2, what="events on the server")

    options = browser.context.new_page()
    options.goto(browser.ext_url("pages/options.html"))
    options.wait_for_selector("body[data-loaded='1']")
    options.wait_for_selector("#stat-sent:has-text('2')")
    with options.expect_download() as download_info:
        options.click("#export")
    exported = json.loads(Path(download_info.value.path()).read_text())
    assert exported["user_id"] == auth["userId"]
    assert {e["paper"]["id"] for e in exported["events"]} == {"arxiv:1406.3020"}

    # pause: nothing recorded
    options.check("#paused")
    wait_until(lambda: browser.storage()["settings"]["paused"] is True, what="paused saved")
    page.goto(LISTING)
    page.click('a[href="/abs/1406.3023"]')
    page.wait_for_url("**/abs/1406.3023")
    page.wait_for_timeout(500)
    assert browser.queue() == {}

    # resume, but with arXiv switched off: still nothing
    options.uncheck("#paused")
    options.uncheck("#site-arxiv")
    wait_until(
        lambda: browser.storage()["settings"]["sites"]["arxiv"] is False, what="site switch saved"
    )
    page.goto(LISTING)
    page.click('a[href="/abs/1406.2854"]')
    page.wait_for_url("**/abs/1406.2854")
    page.wait_for_timeout(500)
    assert browser.queue() == {}
    assert {e["paper"]["id"] for e in history(api, auth["token"])} == {"arxiv:1406.3020"}

    # the cap: with room for 1 event while the server is down, the older one is dropped and shown
    options.check("#site-arxiv")
    browser.worker.evaluate(
        "chrome.storage.local.get('settings').then(({settings}) =>"
        " chrome.storage.local.set({settings: {...settings, queueCap: 1}}))"
    )
    api.stop()
    page.goto(LISTING)
    page.click('a[href="/abs/1406.3023"]')
    page.wait_for_url("**/abs/1406.3023")
    options.wait_for_selector("#stat-droppedCap:has-text('1')")
    options.wait_for_selector("#stat-queued:has-text('1')")
    assert options.locator("#stat-lastError").inner_text() == "network error"


MINIMAL_PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]"
    b"/Count 1>>endobj 3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 144]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def test_a_pdf_opened_in_the_viewer_records_an_open(browser: Browser, api: ApiServer) -> None:
    auth = browser.consent()
    browser.context.route(
        "https://arxiv.org/pdf/**",
        lambda route: route.fulfill(
            status=200, body=MINIMAL_PDF, headers={"content-type": "application/pdf"}
        ),
    )
    page = browser.context.new_page()
    page.goto("https://arxiv.org/pdf/2401.00001v2")
    (event,) = wait_until(lambda: history(api, auth["token"]), what="the open of the PDF")
    assert event["type"] == "open"
    assert event["paper"]["id"] == "arxiv:2401.00001"
