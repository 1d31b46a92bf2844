"""The daily email's content and sending, through a real SMTP server (aiosmtpd): both parts,
links, reasons, abstracts, escaping, one-click headers; once per subscriber and day, resuming
after a crash; nothing new means no email; the RQ job and the admin jobs API; the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import html
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rq import SimpleWorker

from recommender import digest, jobs, users
from recommender.settings import Settings
from server.commands import digest as digest_command
from server.commands.import_papers import import_rows
from tests.test_email import link_in
from tests.test_training_job import drop_queue

pytestmark = pytest.mark.integration

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> Hostile & Co'
PAPERS = [
    {
        "id": "arxiv:2401.00001",
        "title": "Attention Is Still All You Need",
        "abstract": "We revisit attention in depth. " * 20,
        "authors": ["Ada Lovelace"],
    },
    {"id": "arxiv:2401.00002", "title": HOSTILE, "abstract": "<b>Not bold</b> at all."},
    {"id": "arxiv:2401.00003", "title": "Sparse Mixtures of Experts", "abstract": "Short."},
]
NOW = time.time()


@pytest.fixture
def st(mail_app: Any) -> Any:
    state = mail_app.extensions["paperfeed"]
    import_rows(state.store, iter(PAPERS), readers=3, now=NOW)
    return state


def subscriber(st: Any, n: int, confirmed: bool = True) -> str:
    user_id, _ = users.create_user(st.redis, st.keys)
    nonce = digest.subscribe(st.redis, st.keys, user_id, f"reader{n}@example.org", now=NOW)
    if confirmed:
        digest.confirm(st.redis, st.keys, user_id, nonce, now=NOW + n)
    return user_id


def send(st: Any, settings: Settings, mailer: Any = None, **kwargs: Any) -> dict[str, Any]:
    recommend = digest.make_recommend(st.redis, settings, st.keys)
    with mailer or digest.Mailer(settings) as m:
        return digest.send_digests(st.redis, settings, recommend, m, keys=st.keys, **kwargs)


def test_digest_content_and_headers(st: Any, mail_settings: Settings, mailbox: Any) -> None:
    collector, _ = mailbox
    user_id = subscriber(st, 1)
    report = send(st, mail_settings, now=NOW)
    assert report["sent"] == 1
    [message] = collector.to("reader1@example.org")
    assert message["Subject"].startswith("Trending papers for you, ")
    assert message["From"] == "Paperfeed <digest@paperfeed.test>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = message["List-Unsubscribe"]
    assert unsubscribe.startswith("<https://paperfeed.test/v1/email/unsubscribe?token=")
    assert "<mailto:digest@paperfeed.test?subject=unsubscribe>" in unsubscribe
    day = digest.today(NOW)
    assert message["Message-ID"] == digest.message_id(mail_settings, user_id, day)
    assert message["Message-ID"].startswith(f"<digest.{day}.")

    text = message.get_body(("plain",)).get_content()
    body = message.get_body(("html",)).get_content()
    for paper in PAPERS:
        assert paper["title"] in text
    assert "https://arxiv.org/abs/2401.00001" in text
    assert "(trending now)" in text
    assert "We revisit attention in depth." in text and "…" in text
    assert '<a href="https://arxiv.org/abs/2401.00001">Attention Is Still All You Need</a>' in body
    assert "trending now" in body
    assert "<script>" not in body and "<img" not in body and "<b>" not in body
    assert html.escape(HOSTILE) in body
    assert "&lt;b&gt;Not bold&lt;/b&gt;" in body


def test_header_link_unsubscribes_in_one_click(
    st: Any, mail_settings: Settings, mail_client: Any, mailbox: Any
) -> None:
    collector, _ = mailbox
    user_id = subscriber(st, 1)
    send(st, mail_settings, now=NOW)
    [message] = collector.messages
    url = message["List-Unsubscribe"].split(">")[0].lstrip("<")
    path = url.replace("https://paperfeed.test", "")
    response = mail_client.post(
        path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert st.redis.zscore(st.keys.subscribers(), user_id) is None
    assert link_in(message, "/v1/email/unsubscribe") == url


def test_a_subscriber_erased_during_a_run_gets_no_email_and_leaves_nothing(
    st: Any, mail_settings: Settings, mailbox: Any, monkeypatch: Any
) -> None:
    # The run read the subscribers before DELETE /v1/me began for one of them: the run does not
    # claim (so does not send to) that one, writes none of their markers, and sends the others
    collector, _ = mailbox
    staying, leaving = subscriber(st, 1), subscriber(st, 2)
    compose = digest.compose

    def erasure_begins(settings: Any, user_id: str, *args: Any, **kwargs: Any) -> Any:
        if user_id == leaving:
            st.redis.hset(st.keys.user(leaving), "erasing", 1)
        return compose(settings, user_id, *args, **kwargs)

    monkeypatch.setattr(digest, "compose", erasure_begins)
    report = send(st, mail_settings, now=NOW)
    assert report["sent"] == 1 and report["erased"] == 1
    assert collector.to("reader2@example.org") == []
    assert len(collector.to("reader1@example.org")) == 1
    assert not st.redis.exists(st.keys.user_extra(leaving, "sent"))
    assert st.redis.exists(st.keys.user_extra(staying, "sent"))


def test_pending_addresses_get_no_digest(st: Any, mail_settings: Settings, mailbox: Any) -> None:
    collector, _ = mailbox
    subscriber(st, 1, confirmed=False)
    report = send(st, mail_settings, now=NOW)
    assert report["sent"] == 0 and report["subscribers"] == 0
    assert collector.messages == []


def test_once_a_day_and_nothing_new_means_no_email(
    st: Any, mail_settings: Settings, mailbox: Any
) -> None:
    collector, _ = mailbox
    subscriber(st, 1)
    assert send(st, mail_settings, now=NOW)["sent"] == 1
    again = send(st, mail_settings, now=NOW + 60)
    assert again["sent"] == 0 and again["already_sent"] == 1
    assert len(collector.messages) == 1
    # tomorrow: every trending paper was sent yesterday, so nothing new and no email
    tomorrow = send(st, mail_settings, now=NOW + 86400)
    assert tomorrow["sent"] == 0 and tomorrow["nothing_new"] == 1
    assert len(collector.messages) == 1
    # a new paper arrives: only it is sent
    import_rows(st.store, iter([{"id": "arxiv:2401.00009", "title": "Brand new"}]), readers=3)
    assert send(st, mail_settings, now=NOW + 86400 + 60)["sent"] == 1
    text = collector.messages[-1].get_body(("plain",)).get_content()
    assert "Brand new" in text and "Attention Is Still" not in text


class Crashing(digest.Mailer):
    """A mailer whose ``fail_at``-th send fails as a dropped connection would."""

    def __init__(self, settings: Settings, fail_at: int) -> None:
        super().__init__(settings)
        self.calls = 0
        self.fail_at = fail_at

    def send(self, message: Any) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionResetError("injected failure")
        super().send(message)


def test_a_crashed_run_resumes_without_resending(
    st: Any, mail_settings: Settings, mailbox: Any
) -> None:
    collector, _ = mailbox
    users = [subscriber(st, n) for n in range(1, 6)]
    with pytest.raises(ConnectionResetError):
        send(st, mail_settings, Crashing(mail_settings, fail_at=3), now=NOW)
    assert len(collector.messages) == 2  # the first two went out, then the run died
    resumed = send(st, mail_settings, now=NOW + 30)
    assert resumed["sent"] == 3 and resumed["already_sent"] == 2
    recipients = sorted(r for rcpt, _ in collector.delivered for r in rcpt)
    assert recipients == sorted(f"reader{n}@example.org" for n in range(1, 6))
    assert len(users) == 5


def test_a_claim_left_by_a_killed_run_is_never_sent_twice(
    st: Any, mail_settings: Settings, mailbox: Any
) -> None:
    collector, _ = mailbox
    first, second = subscriber(st, 1), subscriber(st, 2)
    marker = f"day:{digest.today(NOW)}"
    st.redis.hset(st.keys.user_extra(first, "sent"), marker, "claimed 123")  # killed mid-send
    report = send(st, mail_settings, now=NOW)
    assert report["sent"] == 1 and report["uncertain"] == 1
    assert [r for rcpt, _ in collector.delivered for r in rcpt] == ["reader2@example.org"]
    assert second


def test_a_refused_address_does_not_stop_the_others(
    st: Any, mail_settings: Settings, mailbox: Any
) -> None:
    collector, _ = mailbox
    for n in (1, 2, 3):
        subscriber(st, n)
    collector.reject.add("reader2@example.org")
    report = send(st, mail_settings, now=NOW)
    assert report["sent"] == 2 and report["refused"] == 1
    again = send(st, mail_settings, now=NOW + 60)
    assert again["already_sent"] == 2 and again["refused"] == 1 and again["sent"] == 0
    assert len(collector.messages) == 2


@pytest.fixture
def queue(mail_settings: Settings) -> Iterator[Any]:
    """The app's job queue, and every job it ran dropped afterwards."""
    conn = jobs.connect_queue(mail_settings)
    queue = jobs.train_queue(conn, mail_settings)
    try:
        yield queue
    finally:
        drop_queue(conn, queue)


def test_digest_job_on_the_queue_and_the_admin_api(
    st: Any, mail_settings: Settings, mail_client: Any, mailbox: Any, queue: Any
) -> None:
    collector, _ = mailbox
    subscriber(st, 1)
    conn = queue.connection
    job_id, created = digest.enqueue_digest(conn, mail_settings, digest.today())
    assert created and job_id == f"{mail_settings.key_prefix}-digest-{digest.today()}"
    assert digest.enqueue_digest(conn, mail_settings, digest.today()) == (job_id, False)
    SimpleWorker([queue], connection=conn).work(burst=True)
    admin = {"Authorization": f"Bearer {mail_settings.admin_token}"}
    status = mail_client.get(f"/v1/admin/jobs/{job_id}", headers=admin).get_json()
    assert status["status"] == "finished", status
    assert status["result"]["sent"] == 1
    assert len(collector.messages) == 1
    # finished: the same day is not enqueued again
    assert digest.enqueue_digest(conn, mail_settings, digest.today()) == (job_id, False)


def test_cli_preview_and_send(st: Any, mail_settings: Settings, mailbox: Any, capsys: Any) -> None:
    collector, _ = mailbox
    user_id = subscriber(st, 1)
    args = argparse.Namespace(preview=user_id, send=False, enqueue=False, day=None)
    assert digest_command.run(args, mail_settings) == 0
    out = capsys.readouterr().out
    assert "To: reader1@example.org" in out
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in out
    assert "Attention Is Still All You Need" in out
    assert collector.messages == []  # a preview sends nothing

    args = argparse.Namespace(preview=None, send=True, enqueue=False, day=None)
    assert digest_command.run(args, mail_settings) == 0
    assert '"sent": 1' in capsys.readouterr().out
    assert len(collector.messages) == 1

    off = dataclasses.replace(mail_settings, smtp_host=None)
    assert digest_command.run(args, off) == 2


@pytest.fixture
def certificate(tmp_path: Any) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI), as (cert file, key file)."""
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("no openssl to make a test certificate")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_starttls_and_tls_with_login(
    st: Any, mail_settings: Settings, certificate: tuple[str, str], monkeypatch: Any, security: str
) -> None:
    import ssl
    import warnings

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from tests.mailbox import Collector, free_port

    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3cret")

    collector = Collector()
    port = free_port()
    options: dict[str, Any] = {"authenticator": authenticate, "auth_required": True}
    if security == "starttls":
        options |= {"tls_context": server_context, "require_starttls": True}
    else:
        # aiosmtpd offers AUTH on implicit TLS only with this, and then warns about it
        options |= {"ssl_context": server_context, "auth_require_tls": False}
        monkeypatch.setattr("warnings.filters", list(warnings.filters))
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    controller = Controller(collector, hostname="127.0.0.1", port=port, **options)
    controller.start()
    # trust the test certificate where the mailer builds its TLS context
    trusted = ssl.create_default_context(cafile=cert)
    monkeypatch.setattr("recommender.digest.ssl.create_default_context", lambda: trusted)
    try:
        settings = dataclasses.replace(
            mail_settings,
            smtp_port=port,
            smtp_security=security,
            smtp_user="paperfeed",
            smtp_password="s3cret",
        )
        subscriber(st, 1)
        assert send(st, settings, now=NOW)["sent"] == 1
    finally:
        controller.stop()
    assert logins == [(b"paperfeed", b"s3cret")]
    assert len(collector.to("reader1@example.org")) == 1


def test_the_clock_enqueues_the_daily_email_when_there_is_nothing_to_train(
    st: Any, mail_settings: Settings, queue: Any
) -> None:
    from recommender import clock

    subscriber(st, 1)  # an account and a subscription, but not one event yet
    now = time.time()
    assert clock.tick(queue.connection, mail_settings, now, st.redis, set()) is None
    due = clock.slot(mail_settings.nightly_cron, now)
    assert queue.get_job_ids() == [digest.digest_job_id(mail_settings, digest.today(due))]


def test_the_clock_sends_the_daily_email_after_the_nightly_training(
    st: Any, mail_settings: Settings, mail_client: Any, mailbox: Any, queue: Any
) -> None:
    from recommender import clock

    collector, _ = mailbox
    subscriber(st, 1)
    conn = queue.connection
    train_id = clock.tick(conn, mail_settings, time.time(), redis=st.redis)
    assert train_id is not None
    due = clock.slot(mail_settings.nightly_cron, time.time())
    digest_id = digest.digest_job_id(mail_settings, digest.today(due))
    admin = {"Authorization": f"Bearer {mail_settings.admin_token}"}
    waiting = mail_client.get(f"/v1/admin/jobs/{digest_id}", headers=admin).get_json()
    assert waiting["status"] in ("deferred", "queued"), waiting  # after the training
    SimpleWorker([queue], connection=conn).work(burst=True)
    trained = mail_client.get(f"/v1/admin/jobs/{train_id}", headers=admin).get_json()
    assert trained["status"] in ("finished", "failed"), trained
    sent = mail_client.get(f"/v1/admin/jobs/{digest_id}", headers=admin).get_json()
    assert sent["status"] == "finished", sent
    assert [m["To"] for m in collector.messages] == ["reader1@example.org"]
