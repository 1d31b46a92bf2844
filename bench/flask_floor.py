"""A floor for ``bench/ingest.py --flask-floor``: the bare callable's work in a minimal Flask route.

It does exactly what ``bench/bare_wsgi.py`` does (parse the JSON, canonicalise the paper ids,
call ``EventStore.ingest`` with the token's hash) inside one Flask view, with none of the
real app's features: no schema or validation, no hooks, request log, metrics, CORS, security
headers or problem+json errors. Its distance from the bare callable is what Flask alone costs
per request, a part of the real app's overhead that no change inside the app can remove.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from bench import bare_wsgi

app = Flask(__name__)


@app.post("/v1/events")
def post_events() -> Any:
    result = bare_wsgi.ingest(request.headers.get("Authorization", ""), request.get_json())
    if result is None:
        return jsonify({}), 401
    return jsonify({"accepted": result.accepted, "duplicates": result.duplicates}), 202
