"""Schemathesis against ``/openapi.json``: generated requests over every operation never get a
5xx and every response matches the document (status, content type, body schema, headers).

Each operation gets up to ``EXAMPLES`` generated cases (well over 1,000 requests in all), with a
real user's token or the admin token, against the real app on a real Redis.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 100
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CALLS: list[int] = []

from recommender.settings import Settings  # noqa: E402
from server.app import create_app  # noqa: E402
from tests.conftest import TEST_REDIS_URL, delete_prefix  # noqa: E402

PREFIX = f"pftest-fuzz-{uuid.uuid4().hex[:8]}"
SETTINGS = Settings.from_env(
    {},
    redis_url=TEST_REDIS_URL,
    key_prefix=PREFIX,
    rate_limit_enabled=False,
    admin_token="admin-secret-for-fuzz",
)
APP = create_app(SETTINGS)
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)
# The coverage phase draws its boundary cases while pytest collects, which takes minutes on
# the nested event schema; the fuzzing phase below generates the requests instead.
schema.config.phases.coverage.enabled = False


@pytest.fixture(scope="module")
def fuzz_user():
    redis = APP.extensions["paperfeed"].redis
    body = APP.test_client().post("/v1/users").get_json()
    yield body
    delete_prefix(redis, PREFIX)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_generated_requests_conform(case, fuzz_user):
    admin = case.path.startswith("/v1/admin")
    token = SETTINGS.admin_token if admin else fuzz_user["token"]
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    case.call_and_validate(checks=CHECKS)
    CALLS.append(1)


def test_enough_requests_were_generated():
    # runs after the parametrised test in file order
    assert len(CALLS) >= 1000, len(CALLS)
