"""The options page's daily-email section in headless Chromium against the real app, which
sends its confirmation through a real SMTP server (aiosmtpd) started by the test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.mailbox import mail_fields

from .conftest import REDIS_URL, ApiServer, Browser, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(e2e_prefix: str, redis_conn: Any, mailbox: Any) -> Iterator[ApiServer]:
    from recommender.settings import Settings
    from server.app import create_app

    settings = Settings.from_env(
        {},
        key_prefix=e2e_prefix,
        redis_url=REDIS_URL,
        rate_limit_enabled=False,
        **mail_fields(mailbox[1]),
    )
    server = ApiServer(create_app(settings))
    server.start()
    yield server
    server.stop()


def test_subscribe_confirm_and_stop_from_the_options_page(
    browser: Browser,
    api: ApiServer,
    mailbox: Any,
) -> None:
    collector, _ = mailbox
    auth = browser.consent()
    options = browser.context.new_page()
    options.goto(browser.ext_url("pages/options.html"))
    options.wait_for_selector("body[data-loaded='1']")
    options.fill("#email", "reader@example.org")
    options.click("#email-form button[type=submit]")
    options.wait_for_selector("#email-status:has-text('Check your inbox')")

    wait_until(lambda: collector.to("reader@example.org"), what="the confirmation email")
    message = collector.to("reader@example.org")[0]
    body = message.get_body(("plain",)).get_content()
    link = re.search(r"https://paperfeed\.test(/v1/email/confirm\?token=\S+)", body).group(1)
    assert api.client(auth["token"]).get(link)["status"] == "confirmed"

    options.reload()
    options.wait_for_selector(
        "#email-status:has-text('The daily email goes to reader@example.org')"
    )
    options.click("#email-stop")
    options.wait_for_selector("#email-status:has-text('Unsubscribed')")
    assert api.client(auth["token"]).get("/v1/me/email") == {
        "status": "not-subscribed",
        "address": None,
    }
    assert urlsplit(link).path == "/v1/email/confirm"
