"""Browser tests of the extension: the unpacked extension in headless Debian Chromium (Python
Playwright, never ``playwright install``) against the real Flask app on the real Redis.

Every test gets its own key prefix (deleted afterwards, never FLUSHALL), its own API server on an
ephemeral port and its own browser profile. The extension is copied to a temporary directory whose
manifest also grants ``http://127.0.0.1:<port>/*`` (the shipped manifest grants the default server,
``http://127.0.0.1:8000/*``, and asks for any other at run time, which needs a click on a browser
prompt that headless browsers don't show). Paper sites are served at their real addresses by
Playwright routing, from the saved pages in ``../shared/data/pages``.

Without Playwright or Chromium the ``e2e`` tests are skipped; with ``REQUIRE_E2E=1`` that is an
error instead, so a CI that lost its browser can't go green.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "extension"
PAGES = REPO.parent / "shared" / "data" / "pages"
REDIS_URL = os.environ.get("PAPERFEED_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SHIPPED = ("manifest.json", "src", "pages", "icons")


def find_chromium() -> str | None:
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        shutil.which("chromium"),
        "/usr/lib/chromium/chromium",
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed"
    if not find_chromium():
        return "no Chromium (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e = [item for item in items if item.get_closest_marker("e2e")]
    reason = _missing() if e2e else None
    if not reason:
        return
    if os.environ.get("REQUIRE_E2E") == "1":
        raise pytest.UsageError(f"REQUIRE_E2E=1 but the browser tests can't run: {reason}")
    for item in e2e:
        item.add_marker(pytest.mark.skip(reason=reason))


def wait_until(
    check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)


# ---------------------------------------------------------------- the API, up and down at will


class ApiServer:
    """The real app on 127.0.0.1:<port>; ``stop()`` and ``start()`` take it down and bring it
    back on the same port."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str) -> Any:
        return _Client(self.app, token)


class _Client:
    def __init__(self, app: Any, token: str) -> None:
        self._client = app.test_client()
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Any:
        response = self._client.get(path, headers=self._headers)
        assert response.status_code == 200, (
            path,
            response.status_code,
            response.get_data(as_text=True),
        )
        return response.get_json()

    def post_events(self, events: list[dict[str, Any]]) -> Any:
        response = self._client.post("/v1/events", json={"events": events}, headers=self._headers)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()


@pytest.fixture
def e2e_prefix() -> str:
    return f"pftest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_conn(e2e_prefix: str) -> Iterator[Any]:
    import redis

    conn = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    conn.ping()
    yield conn
    for key in list(conn.scan_iter(match=f"{e2e_prefix}:*", count=1000)):
        conn.delete(key)
    conn.close()


@pytest.fixture
def api(e2e_prefix: str, redis_conn: Any) -> Iterator[ApiServer]:
    from recommender.settings import Settings
    from server.app import create_app

    settings = Settings.from_env(
        {}, key_prefix=e2e_prefix, redis_url=REDIS_URL, rate_limit_enabled=False
    )
    server = ApiServer(create_app(settings))
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------- paper sites at real addresses


def _page(rel: str) -> bytes:
    return (PAGES / rel).read_bytes()


STUB = b"<!doctype html><html><head><title>stub</title></head><body><p>stub page</p></body></html>"


def arxiv_route(route: Any) -> None:
    """arxiv.org as the saved pages show it; any other arXiv page is a bare stub."""
    from urllib.parse import urlsplit

    path = re.sub(r"^(/abs/\d{4}\.\d{4,5})v\d+$", r"\1", urlsplit(route.request.url).path)
    pages = {
        "/list/astro-ph/new": "arxiv/list-astro-ph-new-2014-06-13.html",
        "/catchup": "arxiv/catchup-astro-ph-2017-04-01.html",
        "/abs/2004.10162": "arxiv/abs-2004.10162.html",
        "/search/": "arxiv/search-abstract-distributed-systems-size200.html",
    }
    body = _page(pages[path]) if path in pages else STUB
    route.fulfill(status=200, body=body, headers={"content-type": "text/html; charset=utf-8"})


# ---------------------------------------------------------------- the browser with the extension


def extension_copy(dest: Path, api_url: str) -> Path:
    """The shipped files only, with the test server's origin added to host_permissions."""
    dest.mkdir(parents=True)
    for name in SHIPPED:
        src = EXTENSION / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy2(src, dest / name)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["host_permissions"] = [*manifest["host_permissions"], f"{api_url}/*"]
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


class Browser:
    """A persistent Chromium context with the extension loaded, plus the helpers the tests share."""

    def __init__(self, context: Any, worker: Any, api: ApiServer, ext: Path, profile: Path) -> None:
        self.context = context
        self.worker = worker
        self.api = api
        self.ext = ext
        self.profile = profile
        self.ext_id = worker.url.split("/")[2]

    def ext_url(self, path: str) -> str:
        return f"chrome-extension://{self.ext_id}/{path}"

    def storage(self) -> dict[str, Any]:
        return self.worker.evaluate("chrome.storage.local.get(null)")

    def queue(self) -> dict[str, Any]:
        return {k: v for k, v in self.storage().items() if k.startswith("q:")}

    def consent(self) -> dict[str, Any]:
        """Go through the consent page with the test server's address; returns the stored auth."""
        page = self.context.new_page()
        page.goto(self.ext_url("pages/welcome.html"))
        page.wait_for_selector("body[data-loaded='1']")
        page.click("details summary")
        page.fill("#server", self.api.url)
        page.click("#consent")
        page.wait_for_selector("#done:not([hidden])", timeout=10000)
        page.close()
        auth = self.storage()["auth"]
        assert auth["server"] == self.api.url
        return auth

    def stop_worker(self, page: Any) -> None:
        cdp = self.context.new_cdp_session(page)
        state: dict[str, str] = {}

        def on_version(params: dict[str, Any]) -> None:
            for version in params.get("versions", []):
                if version.get("scriptURL", "").startswith(f"chrome-extension://{self.ext_id}/"):
                    state["status"] = version.get("runningStatus", "")

        cdp.on("ServiceWorker.workerVersionUpdated", on_version)
        cdp.send("ServiceWorker.enable")
        cdp.send("ServiceWorker.stopAllWorkers")
        deadline = time.monotonic() + 10
        while state.get("status") != "stopped":
            assert time.monotonic() < deadline, f"worker did not stop: {state}"
            page.wait_for_timeout(100)  # CDP events are dispatched only inside Playwright calls
        cdp.detach()


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


def launch(pw: Any, ext: Path, profile: Path, api: ApiServer) -> Browser:
    """Chromium with the unpacked extension; the same ``profile`` again is a browser restart."""
    context = pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=find_chromium(),
        headless=True,
        args=[
            f"--disable-extensions-except={ext}",
            f"--load-extension={ext}",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )
    context.route("https://arxiv.org/**", arxiv_route)
    context.route("http://arxiv.org/**", arxiv_route)
    worker = next(
        (w for w in context.service_workers if w.url.startswith("chrome-extension://")), None
    )
    worker = worker or context.wait_for_event("serviceworker", timeout=15000)
    return Browser(context, worker, api, ext, profile)


@pytest.fixture
def browser(playwright_session: Any, api: ApiServer, tmp_path: Path) -> Iterator[Browser]:
    ext = extension_copy(tmp_path / "extension", api.url)
    instance = launch(playwright_session, ext, tmp_path / "profile", api)
    try:
        yield instance
    finally:
        instance.context.close()
