"""Headers the API adds to its answers: security headers on every answer, a content security
policy on API answers. Shared by the Flask app's after-request hook (:mod:`server.app`) and the
events lane (:mod:`server.lane`), so both answer with the same headers."""

from __future__ import annotations

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Permissions-Policy": "interest-cohort=()",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
