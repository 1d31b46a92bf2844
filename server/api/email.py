"""The daily email's opt-in API: subscribe (double opt-in), confirm, unsubscribe.

- ``POST /v1/me/email`` ``{"address"}`` (user token) stores the address as pending and sends a
  confirmation email whose link carries a signed token that expires.
- ``GET /v1/me/email`` the caller's address and status; ``DELETE /v1/me/email`` unsubscribes.
- ``GET /v1/email/confirm?token=`` confirms (no login: the link is the proof).
- ``GET /v1/email/unsubscribe?token=`` shows what one click would do (GET never unsubscribes:
  mail scanners prefetch links); ``POST`` of the same URL unsubscribes, with or without the
  RFC 8058 body ``List-Unsubscribe=One-Click`` and without any Authorization header.

The link endpoints answer HTML to a browser (``Accept: text/html``), JSON otherwise. Errors are
problem+json: a forged token is 403, an expired or stale one 400; on a server without email (no
SMTP host or no secret key) the endpoints that need it answer 404 ``email-unavailable``. The
logic lives in :mod:`recommender.digest`; registering this blueprint also checks the email
settings (a bad value stops the app at start-up) and installs the erase hook that removes the
subscriber.
"""

from __future__ import annotations

import logging
import smtplib
import time
from typing import Any

from flask import Response, request
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from recommender import digest, users
from server.auth import invalid_token, require_user
from server.errors import Problem
from server.schemas import ProblemOut, StrictSchema
from server.state import state
from server.web import html_response

log = logging.getLogger(__name__)

blp = Blueprint("email", __name__, url_prefix="/v1", description="The daily email")

RESEND_COOLDOWN_S = 60


@blp.record_once
def _install(setup: Any) -> None:
    app_state = setup.app.extensions["paperfeed"]
    digest.check_settings(app_state.settings)
    hooks = app_state.extras.setdefault("erase_hooks", [])
    if digest.forget_user not in hooks:
        hooks.append(digest.forget_user)


class AddressIn(StrictSchema):
    address = fields.Email(
        required=True,
        validate=validate.Length(3, digest.MAX_ADDRESS_CHARS),
        metadata={"example": "ada@example.org"},
    )


class EmailStatusOut(Schema):
    status = fields.String(
        required=True,
        metadata={"description": "pending, confirmed, unsubscribed or not-subscribed"},
    )
    address = fields.String(allow_none=True)


class TokenArgs(StrictSchema):
    token = fields.String(required=True, validate=validate.Length(1, 1000))


class OneClickForm(Schema):
    class Meta:
        unknown = EXCLUDE

    List_Unsubscribe = fields.String(
        data_key="List-Unsubscribe",
        metadata={"description": "RFC 8058: `One-Click` (optional here)"},
    )


def _problem_for(exc: Exception) -> Problem:
    if isinstance(exc, digest.EmailDisabled):
        # like a feature this server does not have (503 would say "try again later")
        return Problem(404, str(exc), kind="email-unavailable")
    if isinstance(exc, digest.BadToken) and exc.expired:
        return Problem(400, "the link has expired; ask for a new one", kind="link-expired")
    if isinstance(exc, digest.BadToken) and "valid" in str(exc):
        return Problem(403, "the link is not valid", kind="invalid-link")
    return Problem(400, str(exc), kind="link-stale")


def _wants_html() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def _answer(heading: str, message: str, status: str, **page: Any) -> Any:
    if _wants_html():
        return html_response("message.html", heading=heading, message=message, **page)
    return {"status": status}


def _error(exc: Exception) -> Any:
    problem = _problem_for(exc)
    if _wants_html():
        return html_response(
            "message.html",
            problem.status,
            heading="This link does not work",
            message=problem.detail,
        )
    raise problem


# -- the caller's subscription ---------------------------------------------------------------
@blp.route("/me/email", methods=["POST"])
@blp.arguments(AddressIn())
@blp.response(202, EmailStatusOut(), description="Pending: a confirmation email was sent")
@blp.alt_response(200, schema=EmailStatusOut, description="That address is already confirmed")
@blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token")
@blp.alt_response(422, schema=ProblemOut, description="Not an email address")
@blp.alt_response(429, schema=ProblemOut, description="Asked again too soon")
@blp.alt_response(404, schema=ProblemOut, description="This server sends no email")
@blp.alt_response(503, schema=ProblemOut, description="The mail server failed")
def subscribe(body: dict) -> Any:
    """Ask for the daily email at ``address``; nothing is sent before its confirmation."""
    user_id = require_user()
    st = state()
    address = body["address"].strip()
    if not digest.valid_address(address):
        raise Problem(422, "not an email address", errors=[{"pointer": "/address", "detail": ""}])
    try:
        digest.require_email(st.settings)
    except digest.EmailDisabled as exc:
        raise _problem_for(exc) from None
    current = digest.subscription(st.redis, st.keys, user_id) or {}
    waited = time.time() - float(current.get("requested_at") or 0)
    if current.get("status") == "pending" and waited < RESEND_COOLDOWN_S:
        retry = str(int(RESEND_COOLDOWN_S - waited) + 1)
        raise Problem(
            429, "a confirmation email was sent a moment ago", headers={"Retry-After": retry}
        )
    try:
        nonce = digest.subscribe(st.redis, st.keys, user_id, address)
    except users.AccountGone:  # DELETE /v1/me began since the token was checked
        raise invalid_token() from None
    if nonce is None:
        return {"status": "confirmed", "address": address}, 200
    try:
        digest.send_confirmation(st.settings, address, user_id, nonce)
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("confirmation email not sent: %s", type(exc).__name__)
        raise Problem(
            503, "the confirmation email could not be sent; try again later", kind="email-failed"
        ) from None
    return {"status": "pending", "address": address}


@blp.route("/me/email", methods=["GET"])
@blp.response(200, EmailStatusOut())
@blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token")
def get_subscription() -> dict:
    """The caller's address and whether it is confirmed."""
    st = state()
    current = digest.subscription(st.redis, st.keys, require_user())
    if not current:
        return {"status": "not-subscribed", "address": None}
    return {"status": current.get("status", "pending"), "address": current.get("address")}


@blp.route("/me/email", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token")
def unsubscribe_me() -> Response:
    """Stop the daily email and forget the address."""
    st = state()
    digest.unsubscribe(st.redis, st.keys, require_user())
    return Response(status=204)


# -- links in emails (no login) --------------------------------------------------------------
@blp.route("/email/confirm", methods=["GET"])
@blp.arguments(TokenArgs(), location="query")
@blp.response(200, EmailStatusOut())
@blp.alt_response(400, schema=ProblemOut, description="Expired or stale link")
@blp.alt_response(403, schema=ProblemOut, description="Forged or malformed link")
@blp.alt_response(422, schema=ProblemOut, description="No token")
@blp.alt_response(404, schema=ProblemOut, description="This server sends no email")
def confirm(args: dict) -> Any:
    """Confirm an address from the link in the confirmation email (double opt-in)."""
    st = state()
    try:
        user_id, nonce = digest.read_confirm_token(st.settings, args["token"])
        digest.confirm(st.redis, st.keys, user_id, nonce)
    except (digest.BadToken, digest.EmailDisabled) as exc:
        return _error(exc)
    return _answer(
        "Subscribed",
        "Your address is confirmed: the papers trending for you arrive once a day.",
        "confirmed",
    )


@blp.route("/email/unsubscribe", methods=["GET"])
@blp.arguments(TokenArgs(), location="query")
@blp.response(200, EmailStatusOut())
@blp.alt_response(403, schema=ProblemOut, description="Forged or malformed link")
@blp.alt_response(422, schema=ProblemOut, description="No token")
@blp.alt_response(404, schema=ProblemOut, description="This server sends no email")
def unsubscribe_page(args: dict) -> Any:
    """What the unsubscribe link would do; POST the same URL to unsubscribe."""
    st = state()
    try:
        user_id = digest.read_unsubscribe_token(st.settings, args["token"])
    except (digest.BadToken, digest.EmailDisabled) as exc:
        return _error(exc)
    current = digest.subscription(st.redis, st.keys, user_id)
    if not current:
        return _answer(
            "Not subscribed", "This address gets no email from Paperfeed.", "not-subscribed"
        )
    return _answer(
        "Unsubscribe?",
        "Press the button to stop the daily email. Paperfeed then forgets the address.",
        current.get("status", "pending"),
        form_action=request.full_path,
        button="Unsubscribe",
    )


@blp.route("/email/unsubscribe", methods=["POST"])
@blp.arguments(TokenArgs(), location="query")
@blp.arguments(OneClickForm(), location="form")
@blp.response(200, EmailStatusOut())
@blp.alt_response(403, schema=ProblemOut, description="Forged or malformed link")
@blp.alt_response(422, schema=ProblemOut, description="No token")
@blp.alt_response(404, schema=ProblemOut, description="This server sends no email")
def one_click_unsubscribe(args: dict, form: dict) -> Any:
    """One-click unsubscribe (RFC 8058): the token in the URL is the only credential."""
    st = state()
    try:
        user_id = digest.read_unsubscribe_token(st.settings, args["token"])
    except (digest.BadToken, digest.EmailDisabled) as exc:
        return _error(exc)
    digest.unsubscribe(st.redis, st.keys, user_id)
    return _answer("Unsubscribed", "You will get no more email from Paperfeed.", "unsubscribed")
