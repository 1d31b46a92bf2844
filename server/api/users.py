"""``POST /v1/users``: register an anonymous user and hand out its token once."""

from __future__ import annotations

from flask_smorest import Blueprint

from recommender import users
from server.schemas import ProblemOut, UserOut
from server.state import state

blp = Blueprint("users", __name__, url_prefix="/v1", description="Anonymous accounts")


@blp.route("/users", methods=["POST"])
@blp.response(201, UserOut())
@blp.alt_response(429, schema=ProblemOut, description="Too many registrations")
@blp.alt_response(503, schema=ProblemOut, description="Redis unreachable or refusing writes")
def create_user() -> dict:
    """Create an anonymous user.

    The token is returned only in this answer and stored only as a hash: keep it.
    """
    st = state()
    user_id, token = users.create_user(st.redis, st.keys)
    return {"user_id": user_id, "token": token}
