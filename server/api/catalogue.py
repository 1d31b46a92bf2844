"""Public reads: the global trending list and single papers from the catalogue."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import RAISE

from recommender.paperid import canonical_paper_id
from server.errors import Problem
from server.schemas import PaperOut, ProblemOut, TrendingArgs, TrendingOut
from server.state import state

blp = Blueprint("catalogue", __name__, url_prefix="/v1", description="Trending and papers")


@blp.route("/trending", methods=["GET"])
@blp.arguments(TrendingArgs(), location="query", unknown=RAISE)
@blp.response(200, TrendingOut())
@blp.alt_response(422, schema=ProblemOut, description="Bad paging parameters")
@blp.alt_response(429, schema=ProblemOut, description="Rate limited")
def get_trending(args: dict) -> dict:
    """Global trending papers by decayed distinct readers, most momentum first."""
    st = state()
    window = args["window"]
    items, total = st.store.trending(args["offset"], args["limit"], window=window)
    return {
        "items": [{**item, "readers": item["score"]} for item in items],
        "limit": args["limit"],
        "offset": args["offset"],
        "total": total,
        "window": window,
        "half_life_hours": st.settings.trending_windows[window] / 3600,
    }


@blp.route("/papers/<path:paper_id>", methods=["GET"])
@blp.response(200, PaperOut())
@blp.alt_response(404, schema=ProblemOut, description="Unknown paper")
@blp.alt_response(429, schema=ProblemOut, description="Rate limited")
def get_paper(paper_id: str) -> dict:
    """One paper of the catalogue, by canonical id or any URL or id form of it."""
    canonical = canonical_paper_id(paper_id)
    if canonical is None:
        raise Problem(404, f"{paper_id[:100]!r} is not a paper id Paperfeed understands")
    paper = state().store.paper(canonical)
    if paper is None:
        raise Problem(404, f"no paper {canonical} in the catalogue")
    return paper
