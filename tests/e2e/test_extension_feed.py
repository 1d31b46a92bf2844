"""The extension's full-page view on the seed catalogue, screenshotted beside the public page
(``docs/feed-desktop.png`` next to ``docs/page-desktop.png``): the two should read as one
product."""

from __future__ import annotations

import pytest

from .conftest import REPO, ApiServer, Browser
from .test_page import SEED

pytestmark = pytest.mark.e2e


def test_full_page_view_lists_papers_with_abstracts(browser: Browser, api: ApiServer) -> None:
    from server.commands.import_papers import import_rows, read_seed

    store = api.app.extensions["paperfeed"].store
    import_rows(store, read_seed(SEED), readers=5)
    browser.consent()
    page = browser.context.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(browser.ext_url("pages/feed.html"))
    page.wait_for_selector("body[data-loaded='1']")
    papers = page.locator("li.paper")
    assert papers.count() >= 10
    assert page.locator("li.paper .paper-abstract").count() >= 10
    page.screenshot(path=str(REPO / "docs" / "feed-desktop.png"))
