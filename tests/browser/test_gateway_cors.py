"""CORS as a browser enforces it: a page served from another origin on 127.0.0.1 calls API
routes with fetch() in headless Chromium, through the Jupyter extension and the standalone
gateway. A POST of JSON makes the browser ask first (a preflight); the call succeeds when the
API's cors allows the page's origin, and is blocked when it allows another origin or has no
cors at all."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import dispatch_kernel as dk
from dispatch_kernel.images.services import free_port, stop_process
from tests.gateway.conftest import start_gateway
from tests.server.live import ThreadedServer

FETCH = """
const url = arguments[0], done = arguments[arguments.length - 1];
fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({name: "Ada"})})
  .then(r => r.json().then(body => done({ok: true, status: r.status, body: body,
                                         run: r.headers.get("X-Dispatch-Run")})))
  .catch(error => done({ok: false, error: String(error)}));
"""


def greet(ctx, payload):
    return {"greeting": f"hello {payload['name']}", "origin": ctx.http["headers"].get("origin")}


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        body = b"<!doctype html><title>another origin</title><p>a page of another origin</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_the_browser_calls_routes_whose_cors_allows_its_origin_and_is_blocked_otherwise(browser, tmp_path: Path):
    page = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{page.server_port}"
    home = tmp_path / "home"
    server = ThreadedServer(home, tmp_path / "server")
    gateway = None
    try:
        with dk.connect(server.url, token=server.token) as client:
            client.deploy(greet)
            client.create_api("allowed", "greet", methods=["POST"], paths=["/allowed"], cors={"origins": [origin]})
            client.create_api("elsewhere", "greet", methods=["POST"], paths=["/elsewhere"],
                              cors={"origins": ["http://127.0.0.1:1"]})
            client.create_api("closed", "greet", methods=["POST"], paths=["/closed"])
        port = free_port()
        gateway = start_gateway(home, tmp_path, port, server.token, server.url)
        browser.get(f"{origin}/index.html")
        for root in (f"{server.url}dispatch/http/default", f"http://127.0.0.1:{port}/default"):
            allowed = browser.execute_async_script(FETCH, f"{root}/allowed")
            assert allowed["ok"] and allowed["status"] == 200, (root, allowed)
            assert allowed["body"] == {"greeting": "hello Ada", "origin": origin}
            assert allowed["run"]  # an exposed header the page may read
            for path in ("elsewhere", "closed"):
                blocked = browser.execute_async_script(FETCH, f"{root}/{path}")
                assert not blocked["ok"] and "Failed to fetch" in blocked["error"], (root, path, blocked)
    finally:
        if gateway is not None:
            stop_process(gateway, grace=20)
        server.stop()
        page.shutdown()
        page.server_close()
