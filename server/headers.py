"""Headers the API adds to its answers: security headers on every answer, a content security
policy on API answers; and the JSON media types it takes request bodies in. Shared by the Flask
app's hooks (:mod:`server.app`) and the events lane (:mod:`server.lane`), so both treat a
request alike and answer with the same headers."""

from __future__ import annotations

import re

# Content-Type media types (parameters stripped, lower case) of a JSON request body
JSON_MIME = re.compile(r"^application/([a-z0-9.+-]*\+)?json$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Permissions-Policy": "interest-cohort=()",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
