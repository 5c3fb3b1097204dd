"""`seedward tui --web` (issue 18): the same Textual app served by textual-serve on loopback, driven
by a real headless Chromium (Debian's `chromium`, through its DevTools protocol), which must show
the dashboard; without the one-time token nothing is served."""

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest

from companion.home import Home
from tests.tui_fake_service import FakeService

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Records what the page's websocket receives (the terminal stream), before the page's own scripts run.
HOOK = """
window.__seen = [];
const Real = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new Real(...args);
  ws.binaryType = "arraybuffer";
  ws.addEventListener("message", (e) => {
    window.__seen.push(typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data));
  });
  return ws;
};
window.WebSocket.prototype = Real.prototype;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served():
    root = Path(tempfile.mkdtemp(prefix="sw-web-", dir="/tmp"))  # short: the control socket lives here
    home = Home(root)
    fake = FakeService(home.socket).start()
    port = free_port()
    exe = str(Path(os.sys.executable).parent / "seedward")
    proc = subprocess.Popen([exe, "tui", "--web", "--port", str(port)], env=dict(os.environ, SEEDWARD_HOME=str(root)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        url = found.group(1) if found else None
        if not line and proc.poll() is not None:
            break
    try:
        assert url, "seedward tui --web printed no address"
        for _ in range(200):  # bounded: the address is printed as the server starts up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield {"url": url, "port": port, "root": root, "fake": fake}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_without_the_token_nothing_is_served(served):
    async def run():
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{served['port']}"
            async with http.get(base + "/static/js/textual.js") as r:
                assert r.status == 200  # textual-serve's own script: nothing of the user's
            async with http.get(base + "/") as r:
                assert r.status == 403
            async with http.get(base + "/?token=wrong") as r:
                assert r.status == 403
            async with http.get(base + "/ws") as r:
                assert r.status == 403
            async with http.get(served["url"]) as r:  # the printed address: the page, and its cookie
                assert r.status == 200 and "data-session-websocket-url" in await r.text()
                assert any(c.key == "seedward_tui" and c["httponly"] for c in r.cookies.values())

    asyncio.run(run())


class DevTools:
    """Chromium's DevTools protocol over its websocket: send(method, params) -> result."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def send(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./quickstart installs it)")
def test_headless_chromium_shows_the_dashboard(served, tmp_path):
    profile = tmp_path / "chromium-profile"  # a new profile: nothing of anyone's browser
    browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                "--no-first-run", f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                "--window-size=1600,1000", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    shot = tmp_path / "dashboard.png"

    async def run():
        port_file = profile / "DevToolsActivePort"
        for _ in range(600):
            if port_file.exists() and port_file.read_text().count("\n") >= 1:
                break
            await asyncio.sleep(0.05)
        port = port_file.read_text().splitlines()[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                page = next(t for t in await r.json() if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tools = DevTools(ws)
                await tools.send("Page.enable")
                await tools.send("Page.addScriptToEvaluateOnNewDocument", source=HOOK)
                await tools.send("Page.navigate", url=served["url"])
                text = ""
                for _ in range(1200):  # bounded: until the dashboard's own words came through the websocket
                    got = await tools.send("Runtime.evaluate", returnByValue=True,
                                           expression="[document.body && document.body.classList.contains("
                                                      "'-first-byte'), (window.__seen || []).join('')]")
                    first_byte, text = got["result"]["value"]
                    if first_byte and "seeding intact over 7 d" in text and "need attention" in text:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # the terminal draws what it received (not an assertion on time)
                png = await tools.send("Page.captureScreenshot", format="png")
                shot.write_bytes(base64.b64decode(png["data"]))
                return text

    try:
        text = asyncio.run(run())
    finally:
        os.killpg(browser.pid, signal.SIGTERM)
        browser.wait(30)
    # The real app ran for the browser: it asked the service for the dashboard and drew it.
    assert "dashboard" in served["fake"].requests
    for words in ("seeding intact over 7 d", "6 torrents", "need attention", "Debian 12.7 amd64 DVD", "Attention"):
        assert words in text, words
    assert shot.stat().st_size > 20_000  # a drawn terminal, not the blank loading page (a few KB)
    keep = os.environ.get("SEEDWARD_WEB_SHOT")  # where to keep the screenshot for a look (optional)
    if keep:
        shutil.copy(shot, keep)

