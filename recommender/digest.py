"""The daily email: double opt-in subscriptions, composing each subscriber's digest, sending it
over SMTP at most once per subscriber and day, and the RQ job that sends them all.

Storage (keys from :mod:`recommender.keys`):

- ``user_extra(uid, "email")`` hash: ``address``, ``status`` (``pending`` / ``confirmed``),
  ``nonce`` (names the pending request, so a confirmation link only confirms the address it was
  sent for), ``requested_at``, ``confirmed_at``. The address is stored nowhere else; unsubscribing
  deletes the hash.
- ``subscribers()`` sorted set: confirmed user ids -> confirmation time (no addresses).
- ``user_extra(uid, "sent")`` hash: ``p:<paper id>`` -> when the paper was emailed (left out for
  ``digest_resend_days``), ``day:<YYYY-MM-DD>`` -> the day's send marker.

Links carry tokens signed with ``PAPERFEED_SECRET_KEY`` (:mod:`itsdangerous`): a confirmation
token expires after ``email_confirm_ttl_h``; an unsubscribe token never does (links in old emails
must keep working, RFC 8058).

**Once a day, at most.** Before a subscriber's email goes to the SMTP server, ``HSETNX`` claims
``day:<day>`` in their ``sent`` hash (``claimed <ts>``); after the server accepted it the marker
becomes ``sent <ts> <Message-ID>`` together with the papers sent. Two runs at once never send
twice (only one claim wins). A run that fails with an exception releases the claim of the
subscriber it was sending to and stops; running it again sends to the rest and to that one, and
skips everyone marked ``sent``. The remaining window: a process killed (power loss, SIGKILL,
OOM) between claiming and recording leaves ``claimed``, and whether the SMTP server accepted that
one message is unknown; later runs skip such a subscriber for the day (reported as
``uncertain``), so they may miss one email but never get two. Each digest also carries a stable
``Message-ID`` per subscriber and day, which lets a receiving system drop a duplicate.

**Erasure.** The user's email keys are written only while their account is active
(:func:`recommender.users.while_active`), so a subscription, a confirmation or a run's markers
that reach Redis after ``DELETE /v1/me`` began write nothing, and a run does not claim (so does
not send to) a subscriber whose erasure began; the subscribers set, in another hash slot, is
checked after the write and taken back.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import html
import logging
import re
import secrets
import smtplib
import ssl
import textwrap
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any
from urllib.parse import urlencode, urlsplit

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from recommender import users
from recommender.keys import Keys
from recommender.settings import Settings, SettingsError

log = logging.getLogger(__name__)

SECURITY_MODES = ("starttls", "tls", "none")
MIN_SECRET_CHARS = 32
CONFIRM_SALT = "paperfeed.email.confirm"
UNSUBSCRIBE_SALT = "paperfeed.email.unsubscribe"
ADDRESS_PATTERN = re.compile(r"^[^\s@<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9.-]{1,252}\.[A-Za-z]{2,63}$")
MAX_ADDRESS_CHARS = 254
ABSTRACT_CHARS = 320
DAY_MARKERS_KEPT_DAYS = 31


class EmailDisabled(RuntimeError):
    """Email is not configured on this server (no SMTP host or no secret key)."""


class BadToken(ValueError):
    """A confirmation or unsubscribe token that is forged, malformed, stale or expired."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


# -- settings -------------------------------------------------------------------------------
def check_settings(settings: Settings) -> None:
    """Fail at start-up (``SettingsError``) on email settings Paperfeed cannot use.

    Email stays off while ``PAPERFEED_SMTP_HOST`` is unset; once it is set,
    ``PAPERFEED_SECRET_KEY`` must be too, or the process refuses to start.
    """
    checks = [
        (
            settings.smtp_security in SECURITY_MODES,
            f"PAPERFEED_SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}",
        ),
        (0 < settings.smtp_port < 65536, "PAPERFEED_SMTP_PORT must be in 1..65535"),
        (settings.smtp_timeout_s > 0, "PAPERFEED_SMTP_TIMEOUT_S must be > 0"),
        (1 <= settings.digest_size <= 50, "PAPERFEED_DIGEST_SIZE must be in 1..50"),
        (settings.digest_resend_days >= 0, "PAPERFEED_DIGEST_RESEND_DAYS must be >= 0"),
        (settings.email_confirm_ttl_h > 0, "PAPERFEED_EMAIL_CONFIRM_TTL_H must be > 0"),
        (
            settings.public_url.startswith(("https://", "http://")),
            "PAPERFEED_PUBLIC_URL must start with https:// or http://",
        ),
        (
            not settings.secret_key or len(settings.secret_key) >= MIN_SECRET_CHARS,
            f"PAPERFEED_SECRET_KEY must be at least {MIN_SECRET_CHARS} characters",
        ),
        (
            not settings.smtp_host or bool(settings.secret_key),
            "PAPERFEED_SMTP_HOST is set but PAPERFEED_SECRET_KEY is not: email links are "
            "signed with it (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)",
        ),
        (
            bool(parseaddr(settings.email_sender)[1]),
            "PAPERFEED_EMAIL_FROM must hold an address",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise SettingsError(message)


def require_email(settings: Settings) -> None:
    """Raise :class:`EmailDisabled` unless this server can send email."""
    if not settings.smtp_host:
        raise EmailDisabled("email is not set up on this server (PAPERFEED_SMTP_HOST)")
    if not settings.secret_key:
        raise EmailDisabled("email is not set up on this server (PAPERFEED_SECRET_KEY)")


def valid_address(address: str) -> bool:
    """A plain ``local@domain.tld`` address, no display name, no header characters."""
    return len(address) <= MAX_ADDRESS_CHARS and bool(ADDRESS_PATTERN.match(address))


# -- tokens ---------------------------------------------------------------------------------
def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    if not settings.secret_key:
        raise EmailDisabled("PAPERFEED_SECRET_KEY is not set")
    return URLSafeTimedSerializer(settings.secret_key, salt=salt)


def confirm_token(settings: Settings, user_id: str, nonce: str) -> str:
    return _serializer(settings, CONFIRM_SALT).dumps({"u": user_id, "n": nonce})


def unsubscribe_token(settings: Settings, user_id: str) -> str:
    return _serializer(settings, UNSUBSCRIBE_SALT).dumps({"u": user_id})


def read_confirm_token(settings: Settings, token: str) -> tuple[str, str]:
    """``(user id, nonce)`` of a confirmation token younger than ``email_confirm_ttl_h``."""
    data = _load(settings, CONFIRM_SALT, token, settings.email_confirm_ttl_h * 3600)
    if not isinstance(data.get("n"), str):
        raise BadToken("not a confirmation token")
    return data["u"], data["n"]


def read_unsubscribe_token(settings: Settings, token: str) -> str:
    """The user id of an unsubscribe token (they do not expire)."""
    return _load(settings, UNSUBSCRIBE_SALT, token, None)["u"]


def _load(settings: Settings, salt: str, token: str, max_age: float | None) -> dict[str, Any]:
    try:
        data = _serializer(settings, salt).loads(token, max_age=max_age)
    except SignatureExpired:
        raise BadToken("the link has expired", expired=True) from None
    except BadData:
        raise BadToken("the link is not valid") from None
    if not isinstance(data, dict) or not isinstance(data.get("u"), str):
        raise BadToken("the link is not valid")
    return data


def _link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}{path}?{urlencode({'token': token})}"


def confirm_link(settings: Settings, user_id: str, nonce: str) -> str:
    return _link(settings, "/v1/email/confirm", confirm_token(settings, user_id, nonce))


def unsubscribe_link(settings: Settings, user_id: str) -> str:
    return _link(settings, "/v1/email/unsubscribe", unsubscribe_token(settings, user_id))


# -- subscriptions --------------------------------------------------------------------------
def subscription(redis: Any, keys: Keys, user_id: str) -> dict[str, str] | None:
    """The user's email hash, or None."""
    return redis.hgetall(keys.user_extra(user_id, "email")) or None


def subscribe(
    redis: Any, keys: Keys, user_id: str, address: str, now: float | None = None
) -> str | None:
    """Record ``address`` as pending; the nonce to put in the confirmation link.

    None when that address is already confirmed (nothing to do, no email to send). Another
    address replaces the old one and is not used until it is confirmed.
    """
    if not valid_address(address):
        raise ValueError("not an email address")
    now = time.time() if now is None else now
    key = keys.user_extra(user_id, "email")
    current = redis.hgetall(key)
    if current.get("status") == "confirmed" and current.get("address") == address:
        return None
    nonce = secrets.token_urlsafe(12)
    redis.hdel(key, "confirmed_at")
    fields = ("address", address, "status", "pending", "nonce", nonce, "requested_at", int(now))
    users.while_active(redis, keys, user_id, "HSET", key, *fields)  # AccountGone: erased
    redis.zrem(keys.subscribers(), user_id)
    return nonce


_CONFIRM_LUA = (
    users.ACCOUNT_REFUSES_LUA
    + """
-- KEYS[1] the user's email hash, KEYS[2] the user's hash; ARGV[1] nonce, ARGV[2] now
if account_refuses(KEYS[2], nil) then return 0 end  -- erased, or being erased
if redis.call('HGET', KEYS[1], 'nonce') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'status') == 'confirmed' then return 2 end
redis.call('HSET', KEYS[1], 'status', 'confirmed', 'confirmed_at', ARGV[2])
return 1
"""
)


def confirm(redis: Any, keys: Keys, user_id: str, nonce: str, now: float | None = None) -> bool:
    """Confirm the pending address the link was sent for; False if it was confirmed before.

    Raises :class:`BadToken` when the link is stale: the user asked for another address since,
    unsubscribed or was erased.
    """
    now = time.time() if now is None else now
    key = keys.user_extra(user_id, "email")
    result = int(redis.eval(_CONFIRM_LUA, 2, key, keys.user(user_id), nonce, int(now)))
    if result == 0:
        raise BadToken("this link is for an address that is no longer pending")
    redis.zadd(keys.subscribers(), {user_id: int(now)}, nx=True)
    if not users.active(redis, keys, user_id):  # erased since: its erasure may have run before
        redis.zrem(keys.subscribers(), user_id)
        raise BadToken("this link is for an address that is no longer pending")
    return result == 1


def unsubscribe(redis: Any, keys: Keys, user_id: str) -> bool:
    """Stop the emails and forget the address; whether there was a subscription."""
    pipe = redis.pipeline(transaction=False)
    pipe.delete(keys.user_extra(user_id, "email"))
    pipe.zrem(keys.subscribers(), user_id)
    deleted, removed = pipe.execute()
    return bool(deleted or removed)


def forget_user(redis: Any, keys: Keys, user_id: str) -> None:
    """Erase hook (``DELETE /v1/me``): the address, the send markers and the subscription."""
    pipe = redis.pipeline(transaction=False)
    pipe.delete(keys.user_extra(user_id, "email"))
    pipe.delete(keys.user_extra(user_id, "sent"))
    pipe.zrem(keys.subscribers(), user_id)
    pipe.execute()


def subscribers(redis: Any, keys: Keys) -> list[str]:
    """Confirmed subscribers' ids, oldest confirmation first.

    Read in one reply, so that people unsubscribing during a run cannot shift the others out of
    a paged read (a million ids is a few tens of megabytes, once a day).
    """
    return list(redis.zrange(keys.subscribers(), 0, -1))


# -- composing ------------------------------------------------------------------------------
def today(now: float | None = None) -> str:
    """The UTC day of ``now`` as ``YYYY-MM-DD``: the unit of "once a day"."""
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).date().isoformat()


def _domain(settings: Settings) -> str:
    return urlsplit(settings.public_url).hostname or "localhost"


def _sender(settings: Settings) -> str:
    return parseaddr(settings.email_sender)[1]


def message_id(settings: Settings, user_id: str, day: str) -> str:
    """The same ``Message-ID`` for a subscriber's digest of one day, whoever sends it."""
    key = (settings.secret_key or "").encode()
    tag = hmac.new(key, f"{user_id}|{day}".encode(), hashlib.sha256).hexdigest()[:24]
    return f"<digest.{day}.{tag}@{_domain(settings)}>"


def _base_message(settings: Settings, address: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.email_sender
    message["To"] = Address(addr_spec=address)
    message["Date"] = formatdate(localtime=False)
    return message


def confirmation_email(settings: Settings, address: str, user_id: str, nonce: str) -> EmailMessage:
    """The double opt-in email: one link that confirms ``address``."""
    link = confirm_link(settings, user_id, nonce)
    hours = settings.email_confirm_ttl_h
    message = _base_message(settings, address, "Confirm your daily Paperfeed email")
    message["Message-ID"] = f"<confirm.{uuid.uuid4().hex}@{_domain(settings)}>"
    message["Auto-Submitted"] = "auto-generated"
    text = (
        "Someone (we hope you) asked Paperfeed to email the papers trending for them to this\n"
        "address once a day. To confirm, open this link:\n\n"
        f"{link}\n\n"
        f"The link works for {hours:g} hours. If you did not ask for this, ignore this email:\n"
        "nothing will be sent without the confirmation.\n"
    )
    message.set_content(text)
    message.add_alternative(
        "<!doctype html><html><body>"
        "<p>Someone (we hope you) asked Paperfeed to email the papers trending for them to "
        "this address once a day.</p>"
        f'<p><a href="{html.escape(link)}">Confirm the daily email</a></p>'
        f"<p>The link works for {hours:g} hours. If you did not ask for this, ignore this "
        "email: nothing will be sent without the confirmation.</p></body></html>",
        subtype="html",
    )
    return message


def _first_lines(abstract: str, limit: int = ABSTRACT_CHARS) -> str:
    text = " ".join(abstract.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,.;:") + "…"


def _safe_url(url: str | None) -> str | None:
    return url if url and url.startswith(("https://", "http://")) else None


def compose(
    settings: Settings, user_id: str, address: str, items: list[dict[str, Any]], day: str
) -> EmailMessage:
    """A subscriber's digest: text and HTML parts, one-click unsubscribe headers.

    ``items`` are ``{"paper", "reason"}`` as :meth:`recommender.serving.Recommender.recommend`
    returns them. Every catalogue text is escaped in the HTML part.
    """
    unsubscribe = unsubscribe_link(settings, user_id)
    message = _base_message(settings, address, f"Trending papers for you, {day}")
    message["Message-ID"] = message_id(settings, user_id, day)
    message["List-Unsubscribe"] = (
        f"<{unsubscribe}>, <mailto:{_sender(settings)}?subject=unsubscribe>"
    )
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Id"] = f"Paperfeed daily <daily.{_domain(settings)}>"
    message["Auto-Submitted"] = "auto-generated"

    lines = [f"Trending papers for you, {day}", ""]
    blocks = []
    for number, item in enumerate(items, 1):
        paper = item["paper"]
        title = " ".join((paper.get("title") or paper["id"]).split())
        url = _safe_url(paper.get("url"))
        abstract = _first_lines(paper.get("abstract") or "")
        reason = item.get("reason") or ""
        lines.append(f"{number}. {title}")
        if url:
            lines.append(f"   {url}")
        if reason:
            lines.append(f"   ({reason})")
        if abstract:
            lines += textwrap.wrap(abstract, 72, initial_indent="   ", subsequent_indent="   ")
        lines.append("")
        e = html.escape
        heading = f'<a href="{e(url)}">{e(title)}</a>' if url else e(title)
        blocks.append(
            '<li style="margin:0 0 1.2em">'
            f'<div dir="auto" style="font-size:1.1em;font-weight:bold">{heading}</div>'
            + (f'<div style="color:#4a4a4a">{e(reason)}</div>' if reason else "")
            + (f'<div dir="auto">{e(abstract)}</div>' if abstract else "")
            + "</li>"
        )
    lines += [
        "--",
        "You get this email because you asked for it in the Paperfeed extension's options.",
        f"Unsubscribe (one click): {unsubscribe}",
    ]
    message.set_content("\n".join(lines) + "\n")
    message.add_alternative(
        '<!doctype html><html lang="en"><body style="font-family:system-ui,sans-serif;'
        'line-height:1.5;color:#1b1b1b;max-width:40em">'
        f'<h1 style="font-size:1.3em">Trending papers for you, {html.escape(day)}</h1>'
        f'<ol style="padding-left:1.2em">{"".join(blocks)}</ol>'
        '<p style="color:#4a4a4a;font-size:0.9em">You get this email because you asked for it '
        "in the Paperfeed extension's options. "
        f'<a href="{html.escape(unsubscribe)}">Unsubscribe</a></p></body></html>',
        subtype="html",
    )
    return message


# -- what to send ---------------------------------------------------------------------------
def recently_sent(sent: dict[str, str], now: float, days: float) -> set[str]:
    """Paper ids emailed within ``days`` of ``now`` (from the ``sent`` hash)."""
    cutoff = now - days * 86400
    return {
        name[2:] for name, value in sent.items() if name.startswith("p:") and float(value) >= cutoff
    }


def pick_papers(
    recommend: Callable[[str, int, float], dict[str, Any]],
    settings: Settings,
    user_id: str,
    sent: dict[str, str],
    now: float,
) -> list[dict[str, Any]]:
    """The subscriber's top ``digest_size`` papers, without those emailed recently."""
    recent = recently_sent(sent, now, settings.digest_resend_days)
    fetch = min(100, settings.digest_size + len(recent))
    items = recommend(user_id, fetch, now)["items"]
    return [item for item in items if item["paper"]["id"] not in recent][: settings.digest_size]


# -- sending --------------------------------------------------------------------------------
class Mailer:
    """One SMTP connection, opened on the first message, with the configured security."""

    def __init__(self, settings: Settings) -> None:
        require_email(settings)
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        host = s.smtp_host or ""
        if s.smtp_security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                host, s.smtp_port, timeout=s.smtp_timeout_s, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, s.smtp_port, timeout=s.smtp_timeout_s)
            if s.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
        if s.smtp_user:
            smtp.login(s.smtp_user, s.smtp_password or "")
        return smtp

    def send(self, message: EmailMessage) -> None:
        """Hand ``message`` to the server; raises when it was not accepted."""
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            self._smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused:
            raise
        except (smtplib.SMTPException, OSError):
            self.close()  # the next message starts a fresh connection
            raise

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_confirmation(settings: Settings, address: str, user_id: str, nonce: str) -> None:
    """Send the double opt-in email now (one SMTP connection)."""
    with Mailer(settings) as mailer:
        mailer.send(confirmation_email(settings, address, user_id, nonce))


def _permanent(exc: smtplib.SMTPException) -> bool:
    """A refusal of this one message (5xx), as opposed to a failing server or connection."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return True
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def _prune(redis: Any, key: str, sent: dict[str, str], now: float, settings: Settings) -> None:
    paper_cutoff = now - settings.digest_resend_days * 86400
    day_cutoff = today(now - DAY_MARKERS_KEPT_DAYS * 86400)
    old = [
        name
        for name, value in sent.items()
        if (name.startswith("p:") and float(value) < paper_cutoff)
        or (name.startswith("day:") and name[4:] < day_cutoff)
    ]
    if old:
        redis.hdel(key, *old)


def send_digests(
    redis: Any,
    settings: Settings,
    recommend: Callable[[str, int, float], dict[str, Any]],
    mailer: Mailer,
    *,
    keys: Keys | None = None,
    day: str | None = None,
    now: float | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """Send ``day``'s digest to every confirmed subscriber who has not had it yet.

    Returns counts: ``sent``, ``already_sent``, ``nothing_new``, ``refused`` (the server
    refused the address), ``uncertain`` (claimed by a run that died mid-send, or running now),
    ``erased`` (their erasure began during the run: not sent).
    Any other failure releases the current subscriber's claim and propagates.
    """
    keys = keys or Keys(settings.key_prefix, settings.stream_partitions)
    now = time.time() if now is None else now
    day = day or today(now)
    marker = f"day:{day}"
    report = {"day": day, "subscribers": 0, "sent": 0, "already_sent": 0, "nothing_new": 0}
    report |= {"refused": 0, "uncertain": 0, "not_confirmed": 0, "erased": 0}
    everyone = subscribers(redis, keys)
    total = max(1, len(everyone))
    for done, user_id in enumerate(everyone):
        report["subscribers"] += 1
        if progress is not None:
            progress("sending", done / total)
        email = subscription(redis, keys, user_id)
        if not email or email.get("status") != "confirmed":
            report["not_confirmed"] += 1
            continue
        sent_key = keys.user_extra(user_id, "sent")
        sent = redis.hgetall(sent_key)
        state = sent.get(marker, "")
        if state.startswith("sent"):
            report["already_sent"] += 1
            continue
        if state:
            report["uncertain"] += 1
            continue
        _prune(redis, sent_key, sent, now, settings)
        items = pick_papers(recommend, settings, user_id, sent, now)
        if not items:
            report["nothing_new"] += 1
            continue
        message = compose(settings, user_id, email["address"], items, day)
        try:
            claim = f"claimed {int(time.time())}"
            if not users.while_active(redis, keys, user_id, "HSETNX", sent_key, marker, claim):
                report["uncertain"] += 1  # another run claimed this one just now
                continue
        except users.AccountGone:
            report["erased"] += 1  # erased since the run read the subscribers
            continue
        try:
            mailer.send(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as exc:
            if not _permanent(exc):
                redis.hdel(sent_key, marker)
                raise
            redis.hdel(sent_key, marker)
            log.warning("digest for user %s refused by the SMTP server", user_id)
            report["refused"] += 1
            continue
        except BaseException:
            redis.hdel(sent_key, marker)  # not accepted: a later run may send it
            raise
        record = [marker, f"sent {int(time.time())} {message['Message-ID']}"]
        record += [value for item in items for value in (f"p:{item['paper']['id']}", int(now))]
        with contextlib.suppress(users.AccountGone):  # erased while sending: nothing to keep
            users.while_active(redis, keys, user_id, "HSET", sent_key, *record)
        report["sent"] += 1
    if progress is not None:
        progress("done", 1.0)
    log.info("digest %s: %s", day, report)
    return report


def preview(
    redis: Any,
    settings: Settings,
    recommend: Callable[[str, int, float], dict[str, Any]],
    user_id: str,
    *,
    keys: Keys | None = None,
    now: float | None = None,
) -> EmailMessage | None:
    """The email ``user_id`` would get next (sends and records nothing); None if nothing new."""
    keys = keys or Keys(settings.key_prefix, settings.stream_partitions)
    now = time.time() if now is None else now
    email = subscription(redis, keys, user_id) or {}
    sent = redis.hgetall(keys.user_extra(user_id, "sent"))
    items = pick_papers(recommend, settings, user_id, sent, now)
    if not items:
        return None
    address = email.get("address") or "not-subscribed@invalid.example"
    return compose(settings, user_id, address, items, today(now))


# -- the job --------------------------------------------------------------------------------
def make_recommend(redis: Any, settings: Settings, keys: Keys | None = None) -> Callable:
    """``recommend(user_id, limit, now)`` from the live serving code, outside any request."""
    from recommender.serving import Recommender

    recommender = Recommender(redis, settings, keys=keys, background=False)
    return recommender.recommend


def digest_job_id(settings: Settings, day: str) -> str:
    """Deterministic: one digest job per day, readable by ``GET /v1/admin/jobs/<id>``."""
    return f"{settings.key_prefix}-digest-{day}"


def run_digest_job(settings: Settings, day: str | None = None) -> dict[str, Any]:
    """The RQ job: send ``day``'s digests, progress in the job's meta, the report as result."""
    from rq.job import get_current_job

    from recommender import jobs
    from recommender.redisconn import connect

    check_settings(settings)
    redis = connect(settings.redis_url or "", timeout_s=max(settings.redis_timeout_s, 30.0))
    keys = Keys(settings.key_prefix, settings.stream_partitions)
    try:
        with Mailer(settings) as mailer:
            return send_digests(
                redis,
                settings,
                make_recommend(redis, settings, keys),
                mailer,
                keys=keys,
                day=day,
                progress=jobs.MetaProgress(get_current_job()),
            )
    finally:
        redis.close()


def enqueue_digest(
    conn: Any, settings: Settings, day: str | None = None, after: str | None = None
) -> tuple[str, bool]:
    """Put ``day``'s send on the job queue: ``(job id, newly enqueued)``.

    ``conn`` is the queue's client (:func:`recommender.jobs.connect_queue`). A job of that day
    that is queued, running or finished is not enqueued again; one that failed is replaced, and
    the new run resumes where it stopped. With ``after`` (the nightly training's job id) the
    send waits for that job to end, successfully or not: a failed or gated training still
    leaves the active model to recommend from.
    """
    from rq.exceptions import NoSuchJobError
    from rq.job import Dependency, Job, JobStatus

    from recommender import jobs

    day = day or today()
    job_id = digest_job_id(settings, day)
    try:
        existing = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        existing = None
    if existing is not None:
        status = existing.get_status()
        if status not in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            return job_id, False
        existing.delete()
    jobs.train_queue(conn, settings).enqueue_call(
        run_digest_job,
        kwargs={"settings": settings, "day": day},
        job_id=job_id,
        timeout=settings.train_timeout_s,
        result_ttl=jobs.RESULT_TTL_S,
        failure_ttl=jobs.RESULT_TTL_S,
        description=f"send the daily email of {day}",
        meta={"progress": {"stage": "queued", "fraction": 0.0}},
        depends_on=Dependency(jobs=[after], allow_failure=True) if after else None,
    )
    log.info("digest job %s enqueued", job_id)
    return job_id, True
