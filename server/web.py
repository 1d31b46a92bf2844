"""The public web page at ``/``: global trending papers, server-rendered, without JavaScript.

One Jinja2 template per page (``server/templates``, autoescaped: every catalogue text is
inert), one stylesheet (``server/static/paperfeed.css``). The page reads
``EventStore.trending`` for "today" or "this week" (``?window=day|week``) a page at a time
(``?page=N``) and sends its own Content-Security-Policy: no script at all, styles and images
from the site itself. Other HTML answers (the email confirmation pages) reuse
:func:`html_response` so they carry the same policy.
"""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Flask, Response, render_template, request

from recommender.redisconn import UNAVAILABLE_ERRORS
from server.state import state

web = Blueprint("web", __name__, template_folder="templates")

PAGE_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
WINDOWS = {"day": "Today", "week": "This week"}
HEADINGS = {"day": "Trending papers today", "week": "Trending papers this week"}
DEFAULT_WINDOW = "day"
PER_PAGE = 20
MAX_PAGE = 500
TEASER_CHARS = 280
MAX_AUTHORS = 6


# Endpoints that take an HTML form post (``application/x-www-form-urlencoded``): the RFC 8058
# one-click unsubscribe, which mail providers send as a form, and the unsubscribe page's button.
FORM_ENDPOINTS = frozenset({"email.one_click_unsubscribe"})
FORM_MIMES = ("application/x-www-form-urlencoded", "multipart/form-data")


def init_app(app: Flask) -> None:
    """Mount the page on ``app``."""
    app.register_blueprint(web)


def html_response(template: str, status: int = 200, **context: Any) -> Response:
    """Render ``template`` as an HTML answer with the page's security policy."""
    response = Response(render_template(template, **context), status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


def readers_label(score: float) -> str:
    """The decayed reader count as a person reads it: "≈ 12 readers", "< 1 reader"."""
    if not math.isfinite(score) or score < 0.5:
        return "< 1 reader"
    count = round(score)
    return f"≈ {count} reader" + ("" if count == 1 else "s")


def teaser(text: str, limit: int = TEASER_CHARS) -> str:
    """The first ``limit`` characters of ``text``, cut at a word boundary when there is one."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,.;:") + "…"


def authors_label(authors: list[str]) -> str:
    if len(authors) <= MAX_AUTHORS:
        return ", ".join(authors)
    return ", ".join(authors[:MAX_AUTHORS]) + f" and {len(authors) - MAX_AUTHORS} more"


def _paper_view(item: dict[str, Any], rank: int) -> dict[str, Any]:
    paper = item["paper"]
    abstract = paper.get("abstract") or ""
    url = paper.get("url") or ""
    return {
        "rank": rank,
        "id": paper["id"],
        "title": paper.get("title") or paper["id"],
        # only web addresses become links: a catalogue url is data, never javascript: etc.
        "url": url if url.startswith(("https://", "http://")) else None,
        "authors": authors_label(list(paper.get("authors") or [])),
        "abstract": " ".join(abstract.split()),
        "teaser": teaser(abstract),
        "readers": readers_label(float(item["score"])),
        "rising": bool(item.get("rising")),
    }


def _page_number(raw: str | None) -> int:
    try:
        number = int(raw or "1")
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


@web.route("/", methods=["GET"])
def index() -> Response:
    """The trending page."""
    window = request.args.get("window", DEFAULT_WINDOW)
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    page = _page_number(request.args.get("page"))
    offset = (page - 1) * PER_PAGE
    try:
        items, total = state().store.trending(offset, PER_PAGE, window=window)
    except UNAVAILABLE_ERRORS:
        retry = str(state().settings.retry_after_s)
        response = html_response("unavailable.html", 503)
        response.headers["Retry-After"] = retry
        return response
    pages = max(1, math.ceil(total / PER_PAGE))
    response = html_response(
        "index.html",
        window=window,
        windows=WINDOWS,
        heading=HEADINGS[window],
        papers=[_paper_view(item, offset + i + 1) for i, item in enumerate(items)],
        total=total,
        page=page,
        pages=pages,
        offset=offset,
    )
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
