"""A floor for ``bench/ingest.py --flask-floor``: the bare callable's work in a minimal Flask route.

It does exactly what ``bench/bare_wsgi.py`` does (parse the JSON, authenticate the token,
canonicalise the paper ids, call ``EventStore.ingest``) inside one Flask view, with none of the
real app's features: no schema or validation, no hooks, request log, metrics, CORS, security
headers or problem+json errors. Its distance from the bare callable is what Flask alone costs
per request, a part of the real app's overhead that no change inside the app can remove.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from bench import bare_wsgi
from recommender.users import authenticate

app = Flask(__name__)


@app.post("/v1/events")
def post_events() -> Any:
    body = request.get_json()
    token = request.headers.get("Authorization", "")[7:]
    user_id = authenticate(bare_wsgi._redis, bare_wsgi._keys, token)
    if user_id is None:
        return jsonify({}), 401
    result = bare_wsgi._store.ingest(user_id, bare_wsgi.events_of(body))
    return jsonify({"accepted": result.accepted, "duplicates": result.duplicates}), 202
