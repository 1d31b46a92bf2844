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
    hostile = {
        "id": "arxiv:2611.00001",
        "title": "<script>document.body.dataset.pwned=1</script><img src=x onerror=alert(1)>T",
        "abstract": "<b>not bold</b> \u202eright-to-left",
    }
    import_rows(store, iter([hostile]), readers=9)  # on top of the list
    browser.consent()
    page = browser.context.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(browser.ext_url("pages/feed.html"))
    page.wait_for_selector("body[data-loaded='1']")
    papers = page.locator("li.paper")
    assert papers.count() >= 10
    assert page.locator("li.paper .paper-abstract").count() >= 10
    # catalogue text is text in the full-page view too
    first = page.locator("li.paper").first
    assert "<script>document.body.dataset.pwned=1</script>" in first.inner_text()
    assert page.locator("li.paper img, li.paper b").count() == 0
    assert page.evaluate("document.body.dataset.pwned") is None
    page.evaluate("document.querySelector('li.paper').remove()")  # the picture shows the seed
    page.screenshot(path=str(REPO / "docs" / "feed-desktop.png"))
