"""The daily email's opt-in API against a real SMTP server (aiosmtpd): double opt-in, signed
links (expired, forged, stale), one-click unsubscribe (RFC 8058), export and erasure."""

from __future__ import annotations

import dataclasses
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest

from recommender import digest
from recommender.settings import Settings, SettingsError
from tests.helpers import keys_under, mentions

pytestmark = pytest.mark.integration

ADDRESS = "ada@example.org"


def link_in(message: EmailMessage, path: str) -> str:
    """The first link to ``path`` in the text part."""
    text = message.get_body(("plain",)).get_content()
    for word in text.split():
        if path in word:
            return word.strip("<>()")
    raise AssertionError(f"no {path} link in:\n{text}")


def register(client: Any) -> dict[str, Any]:
    body = client.post("/v1/users").get_json()
    return {**body, "auth": {"Authorization": f"Bearer {body['token']}"}}


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def subscribe(client: Any, who: dict[str, Any], address: str = ADDRESS) -> Any:
    return client.post("/v1/me/email", json={"address": address}, headers=who["auth"])


def test_double_opt_in(mail_client: Any, mail_app: Any, mailbox: Any) -> None:
    collector, _ = mailbox
    who = register(mail_client)
    response = subscribe(mail_client, who)
    assert response.status_code == 202, response.get_json()
    assert response.get_json() == {"status": "pending", "address": ADDRESS}
    [confirmation] = collector.to(ADDRESS)
    assert confirmation["Subject"] == "Confirm your daily Paperfeed email"
    link = link_in(confirmation, "/v1/email/confirm")
    assert link.startswith("https://paperfeed.test/v1/email/confirm?token=")
    st = mail_app.extensions["paperfeed"]
    assert st.redis.zscore(st.keys.subscribers(), who["user_id"]) is None  # not before confirming
    me = mail_client.get("/v1/me/email", headers=who["auth"]).get_json()
    assert me == {"status": "pending", "address": ADDRESS}

    confirmed = mail_client.get(path_of(link))
    assert confirmed.status_code == 200
    assert confirmed.get_json() == {"status": "confirmed"}
    assert st.redis.zscore(st.keys.subscribers(), who["user_id"]) is not None
    assert mail_client.get(path_of(link)).status_code == 200  # a second click is harmless
    me = mail_client.get("/v1/me/email", headers=who["auth"]).get_json()
    assert me["status"] == "confirmed"
    # the same address again: nothing to confirm, no second email
    again = subscribe(mail_client, who)
    assert again.status_code == 200 and again.get_json()["status"] == "confirmed"
    assert len(collector.to(ADDRESS)) == 1
    # a browser gets a page, with the page's CSP
    page = mail_client.get(path_of(link), headers={"Accept": "text/html"})
    assert page.mimetype == "text/html" and "Subscribed" in page.get_data(as_text=True)
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_export_shows_the_address(mail_client: Any) -> None:
    who = register(mail_client)
    subscribe(mail_client, who)
    export = mail_client.get("/v1/me/export", headers=who["auth"]).get_json()
    assert export["email"]["address"] == ADDRESS
    assert export["email"]["status"] == "pending"


def test_bad_links_are_refused(
    mail_client: Any, mail_settings: Settings, mailbox: Any, monkeypatch: Any
) -> None:
    collector, _ = mailbox
    who = register(mail_client)
    subscribe(mail_client, who)
    link = link_in(collector.to(ADDRESS)[0], "/v1/email/confirm")

    forged = mail_client.get(path_of(link)[:-3] + "abc")
    assert forged.status_code == 403
    assert forged.mimetype == "application/problem+json"
    assert forged.get_json()["type"].endswith("/invalid-link")
    other_key = dataclasses.replace(mail_settings, secret_key="another-secret-" + "y" * 32)
    token = digest.confirm_token(other_key, who["user_id"], "nonce")
    assert mail_client.get(f"/v1/email/confirm?token={token}").status_code == 403
    # a valid unsubscribe token is not a confirmation token
    unsubscribe = digest.unsubscribe_token(mail_settings, who["user_id"])
    assert mail_client.get(f"/v1/email/confirm?token={unsubscribe}").status_code == 403
    assert mail_client.get("/v1/email/confirm").status_code == 422

    # expired: the clock moves past the link's lifetime
    real_time = time.time
    later = real_time() + mail_settings.email_confirm_ttl_h * 3600 + 5
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    expired = mail_client.get(path_of(link))
    assert expired.status_code == 400
    assert expired.mimetype == "application/problem+json"
    assert expired.get_json()["type"].endswith("/link-expired")
    monkeypatch.setattr("itsdangerous.timed.time.time", real_time)

    # stale: another address was asked for since; the first link no longer confirms anything
    st = mail_client.application.extensions["paperfeed"]
    email_key = st.keys.user_extra(who["user_id"], "email")
    st.redis.hset(email_key, "requested_at", 0)  # past the resend cool-down
    assert subscribe(mail_client, who, "grace@example.org").status_code == 202
    stale = mail_client.get(path_of(link))
    assert stale.status_code == 400
    assert stale.get_json()["type"].endswith("/link-stale")
    html = mail_client.get(path_of(link), headers={"Accept": "text/html"})
    assert html.status_code == 400 and "This link does not work" in html.get_data(as_text=True)


def test_asking_again_at_once_is_rate_limited(mail_client: Any) -> None:
    who = register(mail_client)
    assert subscribe(mail_client, who).status_code == 202
    again = subscribe(mail_client, who, "grace@example.org")
    assert again.status_code == 429 and "Retry-After" in again.headers


def test_invalid_addresses(mail_client: Any) -> None:
    who = register(mail_client)
    for bad in ("not-an-address", "a@b", "x@example.org\r\nBcc: y@example.org", "a" * 300):
        response = subscribe(mail_client, who, bad)
        assert response.status_code == 422, bad
    assert mail_client.post("/v1/me/email", json={"address": ADDRESS}).status_code == 401


def confirmed_subscriber(client: Any, collector: Any, address: str = ADDRESS) -> dict[str, Any]:
    who = register(client)
    assert subscribe(client, who, address).status_code == 202
    link = link_in(collector.to(address)[-1], "/v1/email/confirm")
    assert client.get(path_of(link)).status_code == 200
    return who


def test_one_click_unsubscribe(mail_client: Any, mail_settings: Settings, mailbox: Any) -> None:
    collector, _ = mailbox
    who = confirmed_subscriber(mail_client, collector)
    token = digest.unsubscribe_token(mail_settings, who["user_id"])
    url = f"/v1/email/unsubscribe?token={token}"
    st = mail_client.application.extensions["paperfeed"]

    # GET only shows what a click would do (mail scanners prefetch links)
    shown = mail_client.get(url)
    assert shown.status_code == 200 and shown.get_json() == {"status": "confirmed"}
    page = mail_client.get(url, headers={"Accept": "text/html"}).get_data(as_text=True)
    assert '<form method="post"' in page and 'value="One-Click"' in page
    assert st.redis.zscore(st.keys.subscribers(), who["user_id"]) is not None

    # RFC 8058: a form POST with List-Unsubscribe=One-Click, no Authorization header
    done = mail_client.post(
        url,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json() == {"status": "unsubscribed"}
    assert st.redis.zscore(st.keys.subscribers(), who["user_id"]) is None
    assert digest.subscription(st.redis, st.keys, who["user_id"]) is None
    assert mail_client.get(url).get_json() == {"status": "not-subscribed"}
    # again, and with an empty body: still fine
    assert mail_client.post(url).status_code == 200
    forged = mail_client.post(
        url[:-2] + "zz",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert forged.status_code == 403
    # other form posts are still refused by the JSON-only API
    other = mail_client.post(
        "/v1/me/email",
        data="address=a@example.org",
        content_type="application/x-www-form-urlencoded",
        headers=who["auth"],
    )
    assert other.status_code == 415


def test_delete_unsubscribes(mail_client: Any, mailbox: Any) -> None:
    collector, _ = mailbox
    who = confirmed_subscriber(mail_client, collector)
    assert mail_client.delete("/v1/me/email", headers=who["auth"]).status_code == 204
    me = mail_client.get("/v1/me/email", headers=who["auth"]).get_json()
    assert me == {"status": "not-subscribed", "address": None}
    st = mail_client.application.extensions["paperfeed"]
    assert st.redis.zscore(st.keys.subscribers(), who["user_id"]) is None


def test_erasure_removes_the_address(
    mail_client: Any, mail_app: Any, mail_settings: Settings, mailbox: Any
) -> None:
    from server.commands.import_papers import import_rows

    collector, _ = mailbox
    st = mail_app.extensions["paperfeed"]
    import_rows(st.store, iter([{"id": "arxiv:2401.00001", "title": "A paper"}]), readers=2)
    who = confirmed_subscriber(mail_client, collector, "erase.me@example.org")
    report = digest.send_digests(
        st.redis,
        mail_settings,
        digest.make_recommend(st.redis, mail_settings, st.keys),
        digest.Mailer(mail_settings),
        keys=st.keys,
    )
    assert report["sent"] == 1
    export = mail_client.get("/v1/me/export", headers=who["auth"]).get_json()
    assert export["email"]["address"] == "erase.me@example.org"
    assert export["email"]["status"] == "confirmed"
    assert export["emails_sent"]["p:arxiv:2401.00001"]
    assert export["emails_sent"][f"day:{digest.today()}"].startswith("sent ")
    assert mail_client.delete("/v1/me", headers=who["auth"]).status_code == 204
    prefix = mail_settings.key_prefix
    for key in keys_under(st.redis, prefix):
        assert not mentions(st.redis, key, "erase.me@example.org"), key
        assert not mentions(st.redis, key, who["user_id"]), key


def test_nothing_of_the_email_outlives_an_erasure_it_races(
    mail_client: Any, mail_app: Any, mailbox: Any
) -> None:
    # DELETE /v1/me marks the account first: a subscription or a confirmation link that
    # reaches Redis after that writes nothing (the token still answers until the account is
    # deleted at the end, so the subscription is what refuses), and nothing is left once the
    # erasure ends
    collector, _ = mailbox
    st = mail_app.extensions["paperfeed"]
    confirming, subscribing = register(mail_client), register(mail_client)
    assert subscribe(mail_client, confirming, "first@example.org").status_code == 202
    [confirmation] = collector.to("first@example.org")
    for who in (confirming, subscribing):  # their erasures have begun
        st.redis.hset(st.keys.user(who["user_id"]), "erasing", 1)
    assert mail_client.get(path_of(link_in(confirmation, "/v1/email/confirm"))).status_code == 400
    assert st.redis.zscore(st.keys.subscribers(), confirming["user_id"]) is None
    late = subscribe(mail_client, subscribing, "second@example.org")
    assert late.status_code == 401 and late.get_json()["type"].endswith("/invalid-token")
    assert collector.to("second@example.org") == []
    assert not st.redis.exists(st.keys.user_extra(subscribing["user_id"], "email"))
    for who in (confirming, subscribing):  # the erasures run (from the start) and end
        st.redis.hdel(st.keys.user(who["user_id"]), "erasing")
        assert mail_client.delete("/v1/me", headers=who["auth"]).status_code == 204
    for key in keys_under(st.redis, st.settings.key_prefix):
        assert not mentions(st.redis, key, "example.org"), key
        for who in (confirming, subscribing):
            assert not mentions(st.redis, key, who["user_id"]), key


def test_email_off_is_a_clear_404(client: Any, user: dict[str, Any]) -> None:
    response = client.post("/v1/me/email", json={"address": ADDRESS}, headers=user["auth"])
    assert response.status_code == 404
    assert response.get_json()["type"].endswith("/email-unavailable")
    assert client.get("/v1/email/confirm?token=abc").status_code == 404
    assert client.post("/v1/email/unsubscribe?token=abc").status_code == 404


def test_smtp_without_secret_key_fails_at_start(settings: Settings, redis_client: Any) -> None:
    from server.app import create_app

    broken = dataclasses.replace(settings, smtp_host="127.0.0.1")
    with pytest.raises(SettingsError, match="PAPERFEED_SECRET_KEY"):
        create_app(broken, redis=redis_client)
    with pytest.raises(SettingsError, match="PAPERFEED_SMTP_SECURITY"):
        digest.check_settings(dataclasses.replace(settings, smtp_security="ssl"))
    with pytest.raises(SettingsError, match="at least"):
        digest.check_settings(dataclasses.replace(settings, secret_key="short"))
