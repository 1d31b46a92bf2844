"""The OpenAPI document: flask-smorest's ``Api`` with errors documented as problem+json.

Every operation documents a ``default`` response of ``application/problem+json`` (RFC 9457)
besides its own success and error codes, because any endpoint can answer 429, 500 or 503.
"""

from __future__ import annotations

import http
from typing import Any

from apispec import BasePlugin
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from server.errors import PROBLEM_MIME
from server.schemas import ProblemOut


class ProblemContentPlugin(BasePlugin):
    """Documents every error response (4xx, 5xx, default) as ``application/problem+json``."""

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        for operation in (operations or {}).values():
            for status, response in operation.get("responses", {}).items():
                if not isinstance(response, dict) or "content" not in response:
                    continue
                if status == "default" or str(status)[0] in "45":
                    content = response["content"]
                    if "application/json" in content:
                        content[PROBLEM_MIME] = content.pop("application/json")


class PaperfeedApi(Api):
    ERROR_SCHEMA = ProblemOut

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIME)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "A problem (RFC 9457)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIME)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


def make_api(app: Any) -> PaperfeedApi:
    return PaperfeedApi(app, spec_kwargs={"extra_plugins": [ProblemContentPlugin()]})
