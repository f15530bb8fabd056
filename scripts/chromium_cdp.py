"""Headless Chromium driven over the Chrome DevTools Protocol (aiohttp's websocket client), for the
scripts that load the shipped workflows into ComfyUI's REAL frontend: scripts/frontend_check.py and
scripts/make_thumbnails.py. A script helper, not part of the pack's nodes.

    async with Browser(default_chromium(), 1600, 1000) as b:
        await b.open("http://127.0.0.1:8188")      # navigate, wait for the app, close dialogs
        value = await b.eval("(async () => 1 + 1)()")
        png = await b.screenshot()

Needs ``chromium`` (Debian package) and ``aiohttp`` (a ComfyUI requirement).
"""
from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time

from e2e_server_run import free_port

# true once the ComfyUI frontend's app and its graph exist
JS_READY = "!!(window.comfyAPI && window.comfyAPI.app && window.comfyAPI.app.app && window.comfyAPI.app.app.graph)"


def default_chromium() -> str:
    return shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"


class Browser:
    """Headless Chromium (``--headless=new --no-sandbox --disable-gpu`` + ``flags``, a temporary
    profile, a ``width`` x ``height`` window) with one page, driven over the DevTools protocol.
    ``network=True`` enables the Network domain: ``responses`` then lists ``(url, HTTP status)`` of
    every response the page received. ``async with`` starts it and, on exit or a failed start,
    closes the connection, stops Chromium and deletes the profile."""

    def __init__(self, chromium: str, width: int = 1600, height: int = 1000, flags=(), network: bool = False):
        self.chromium, self.size, self.flags, self.network = chromium, (width, height), tuple(flags), network
        self.proc = self.session = self.ws = None

    async def __aenter__(self):
        import aiohttp
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="tfv_chromium_")
        self.proc = subprocess.Popen(
            [self.chromium, "--headless=new", "--no-sandbox", "--disable-gpu", *self.flags,
             f"--remote-debugging-port={self.port}", f"--user-data-dir={self.profile}",
             f"--window-size={self.size[0]},{self.size[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.session = aiohttp.ClientSession()
            for _ in range(200):
                try:
                    targets = await (await self.session.get(f"http://127.0.0.1:{self.port}/json")).json()
                    if any(t["type"] == "page" for t in targets):
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.3)
            page = next(t for t in targets if t["type"] == "page")
            self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
            self.n, self.responses = 0, []
            await self.call("Page.enable")
            if self.network:
                await self.call("Network.enable")
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc):
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def call(self, method, **params):
        """One DevTools command; its result. Raises RuntimeError on a protocol error."""
        self.n += 1
        mid = self.n
        await self.ws.send_json({"id": mid, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=300)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Network.responseReceived":
                self.responses.append((msg["params"]["response"]["url"], msg["params"]["response"]["status"]))

    async def eval(self, expr):
        """The value of the JavaScript ``expr`` in the page (promises awaited). Raises RuntimeError
        on a JavaScript exception."""
        r = await self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(json.dumps(r["exceptionDetails"])[:2000])
        return r["result"].get("value")

    async def escape(self, times: int = 2):
        for _ in range(times):
            for t in ("keyDown", "keyUp"):
                await self.call("Input.dispatchKeyEvent", type=t, key="Escape", code="Escape", windowsVirtualKeyCode=27)
            await asyncio.sleep(0.5)

    async def open(self, url: str):
        """Navigate to the ComfyUI frontend at ``url``, wait (180 s at most, else SystemExit) until its
        app has a graph, then 3 s, then close the first-run template browser / dialogs (Escape twice)."""
        await self.call("Page.navigate", url=url)
        t0 = time.time()
        while not await self.eval(JS_READY):
            if time.time() - t0 > 180:
                raise SystemExit("frontend did not start in 180 s")
            await asyncio.sleep(1)
        await asyncio.sleep(3)
        await self.escape()

    async def screenshot(self, clip: dict | None = None) -> bytes:
        """PNG bytes of the page, or of ``clip`` ({x, y, width, height} in CSS pixels)."""
        kw = {"format": "png"}
        if clip:
            kw["clip"] = {**clip, "scale": 1}
        return base64.b64decode((await self.call("Page.captureScreenshot", **kw))["data"])
