"""Firefox ESR smoke test: the same unpacked extension (one manifest) installed in headless
Firefox through puppeteer-core's WebDriver BiDi, consenting, and capturing one click on the real
arXiv listing (served at http://arxiv.org through a local HTTP proxy). Skipped cleanly when
Firefox ESR, node or the extension's node_modules are missing (``REQUIRE_E2E=1`` does not cover
Firefox: it is a smoke test)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .conftest import EXTENSION, PAGES, STUB, ApiServer, extension_copy, wait_until

pytestmark = pytest.mark.e2e

FIREFOX = os.environ.get("FIREFOX_PATH", "/usr/bin/firefox-esr")
NODE = shutil.which("node")
SCRIPT = EXTENSION / "test" / "e2e" / "firefox-smoke.cjs"


def _missing() -> str | None:
    if not os.path.exists(FIREFOX):
        return f"no Firefox ESR at {FIREFOX}"
    if not NODE:
        return "no node"
    if not (EXTENSION / "node_modules" / "puppeteer-core").is_dir():
        return "run `npm ci` in extension/ (puppeteer-core)"
    return None


class _ArxivProxy(BaseHTTPRequestHandler):
    """A forward proxy that answers http://arxiv.org/... from the saved pages."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.hostname == "arxiv.org" and url.path == "/list/astro-ph/new":
            body = (PAGES / "arxiv" / "list-astro-ph-new-2014-06-13.html").read_bytes()
        elif url.hostname == "arxiv.org":
            body = STUB
        else:
            self.send_error(502)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def arxiv_proxy() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ArxivProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_firefox_installs_consents_and_captures_a_click(
    api: ApiServer, arxiv_proxy: int, tmp_path: Path
) -> None:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    ext = extension_copy(tmp_path / "extension", api.url)
    run = subprocess.run(
        [NODE, str(SCRIPT), str(ext), api.url, str(arxiv_proxy)],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, (
        f"no result from the Firefox run: rc={run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    )
    result = json.loads(lines[-1])
    assert result["ok"], result.get("error")
    client = api.client(result["token"])

    def clicked() -> list[dict[str, Any]] | None:
        events = client.get("/v1/me/history")["events"]
        return [e for e in events if e["type"] == "click"] or None

    (click,) = wait_until(clicked, timeout=10, what=f"the Firefox click on the server ({result})")
    assert click["paper"] == {
        "id": "arxiv:1406.3020",
        "title": (
            "Exoplanet population inference and the abundance of Earth analogs from noisy, "
            "incomplete catalogs"
        ),
    }
    assert click["site"] == "arxiv.org"
