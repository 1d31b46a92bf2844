"""``GET /v1/recommendations``: "trending for you" for the caller (see :mod:`recommender.serving`).

The per-process :class:`~recommender.serving.Recommender` is created on the first request (never
at import) and kept in the app state; it swaps to a newly activated model by itself.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from recommender.serving import Recommender
from server.auth import require_user
from server.schemas import PaperOut, ProblemOut
from server.state import state

blp = Blueprint("recommendations", __name__, url_prefix="/v1", description="Trending for you")


class RecommendationArgs(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class RecommendationOut(Schema):
    paper = fields.Nested(PaperOut, required=True)
    score = fields.Float(required=True)
    reason = fields.String(
        required=True,
        metadata={"description": '"because you read <title>" or "trending now"'},
    )


class RecommendationsOut(Schema):
    items = fields.List(fields.Nested(RecommendationOut), required=True)
    personalised = fields.Boolean(
        required=True, metadata={"description": "False: global trending (cold start)."}
    )
    model_version = fields.String(allow_none=True, required=True)


def recommender() -> Recommender:
    """The app's recommender (one per process, created lazily)."""
    st = state()
    found = st.extras.get("recommender")
    if found is None:
        found = st.extras["recommender"] = Recommender(
            st.redis, st.settings, keys=st.keys, store=st.store
        )
    return found


@blp.route("/recommendations", methods=["GET"])
@blp.arguments(RecommendationArgs(), location="query")
@blp.response(200, RecommendationsOut())
@blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token")
@blp.alt_response(422, schema=ProblemOut, description="Bad limit")
def get_recommendations(args: dict) -> dict:
    """Papers trending now, ranked for the caller; what they opened or dismissed is left out."""
    return recommender().recommend(require_user(), args["limit"])
