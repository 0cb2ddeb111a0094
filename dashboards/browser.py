"""Open the dashboard in headless Chromium from file://, with networking cut, and check that it rendered.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: file descriptors 3
and 4 of the child, NUL-separated JSON), so no port is opened. The page writes a render-status element
once every vegaEmbed promise has settled; console errors, exceptions and any request that leaves
file:// are collected from the protocol's events.

    uv run python -m dashboards.browser data/dashboard/index.html data/dashboard/screenshot.png
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; MULTIPOLAR_CHROMIUM overrides
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
STATUS = """(() => {
  const element = document.getElementById("render-status");
  return element && element.dataset.done ? element.textContent : null;
})()"""

PAGE_WIDTH = "document.documentElement.scrollWidth"


@dataclass(frozen=True)
class BrowserReport:
    """What headless Chromium saw when it opened the page."""

    html: Path
    screenshot: Path | None
    views: int
    rendered: tuple[str, ...]
    empty: tuple[str, ...]
    marks: dict[str, int]
    empty_by_switch: dict[str, list[str]]  # "population / window" → views with no marks under it
    clipped_by_switch: dict[str, list[str]]  # "population / window" → text drawn past the right or bottom edge
    console_errors: tuple[str, ...]
    console_warnings: tuple[str, ...]
    external_requests: tuple[str, ...]
    render_ms: float | None  # in the page: from navigation start to every view drawn (default switches)
    wall_seconds: float  # from navigation to the render status, measured outside the browser
    chromium: str = ""
    page_errors: tuple[str, ...] = field(default=())
    width: int = 0  # the window's width, in CSS pixels
    page_width: int = 0  # the page's: wider than the window means a sideways scroll

    @property
    def ok(self) -> bool:
        """Every view drew marks under every switch setting with no text cut off at the edge, nothing errored or
        warned (Vega warns of what it could not draw as asked) and nothing left file://."""
        return (
            self.views > 0
            and len(self.rendered) == self.views
            and not self.empty
            and bool(self.empty_by_switch)
            and not any(self.empty_by_switch.values())
            and not any(self.clipped_by_switch.values())
            and not self.console_errors
            and not self.console_warnings
            and not self.page_errors
            and not self.external_requests
        )


def chromium_path() -> Path | None:
    """The Chromium binary to use, or None when none is installed."""
    override = os.environ.get("MULTIPOLAR_CHROMIUM")
    if override:
        return Path(override)
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


class DevToolsPipe:
    """A DevTools protocol session over Chromium's debugging pipe."""

    def __init__(self, process: subprocess.Popen[bytes], commands: int, replies: int) -> None:
        self.process = process
        self.commands = commands
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.next_id = 0
        self.reader = threading.Thread(target=self._read, args=(replies,), daemon=True)
        self.reader.start()

    def _read(self, fd: int) -> None:
        buffer = b""
        with os.fdopen(fd, "rb", buffering=0) as stream:
            while chunk := stream.read(1 << 16):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for message in messages:
                    self.replies.put(json.loads(message))
        self.replies.put(None)

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        """Send one command and wait for its result, keeping the events that arrive meanwhile."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"Chromium did not answer {method} within {timeout:.0f} s") from None
            if reply is None:
                raise RuntimeError(f"Chromium exited while waiting for {method}")
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)


def _launch(binary: Path, profile: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start Chromium with the debugging pipe on its fds 3 (commands in) and 4 (replies out)."""
    to_child, commands = os.pipe()
    replies, from_child = os.pipe()

    def pipe_fds() -> None:
        # Move both ends above the low fds first, so placing them on 3 and 4 cannot clobber either.
        inbound = fcntl.fcntl(to_child, fcntl.F_DUPFD_CLOEXEC, 10)
        outbound = fcntl.fcntl(from_child, fcntl.F_DUPFD_CLOEXEC, 10)
        os.dup2(inbound, 3)
        os.dup2(outbound, 4)

    process = subprocess.Popen(
        [str(binary), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=False,  # our own fds are close-on-exec; 3 and 4 must survive
        preexec_fn=pipe_fds,  # runs before any thread of ours starts
    )
    os.close(to_child)
    os.close(from_child)
    return process, commands, replies


def _console_text(event: dict[str, Any]) -> str:
    args = event["params"].get("args", [])
    return " ".join(str(a.get("value", a.get("description", a.get("type", "")))) for a in args)


def _sorted_events(events: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """Console errors, console warnings and requests that leave file://."""
    errors: list[str] = []
    warnings: list[str] = []
    requests: list[str] = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(_console_text(event))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "warning":
            warnings.append(_console_text(event))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if not url.startswith(LOCAL_SCHEMES):
                requests.append(url)
    return errors, warnings, requests


def check_in_browser(html: Path, screenshot: Path, timeout: float = 60, *, width: int = 1280) -> BrowserReport:
    """Open `html` in headless Chromium with no network, check every view rendered, save a screenshot."""
    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError(f"no Chromium found at {CHROMIUM} (apt-get install -y chromium)")
    html = Path(html).resolve()
    profile = Path(tempfile.mkdtemp(prefix="multipolar-chromium-"))
    process, commands, replies = _launch(binary, profile)
    try:
        cdp = DevToolsPipe(process, commands, replies)
        version = cdp.call("Browser.getVersion", timeout=timeout).get("product", "")
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"):
            cdp.call(method, session=session)
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        started = time.monotonic()
        cdp.call("Page.navigate", {"url": html.as_uri()}, session=session, timeout=timeout)
        status = None
        while status is None:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{html} did not report its render status within {timeout:.0f} s")
            time.sleep(0.05)
            result = cdp.call("Runtime.evaluate", {"expression": STATUS, "returnByValue": True}, session=session)
            status = result.get("result", {}).get("value")
        wall = time.monotonic() - started
        status = json.loads(status)
        page_width = cdp.call("Runtime.evaluate", {"expression": PAGE_WIDTH, "returnByValue": True}, session=session)
        size = cdp.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = cdp.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            },
            session=session,
            timeout=timeout,
        )
        screenshot = Path(screenshot)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        errors, warnings, requests = _sorted_events(cdp.events)
        with contextlib.suppress(RuntimeError, TimeoutError):
            cdp.call("Browser.close", timeout=5)
    finally:
        os.close(commands)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return BrowserReport(
        html=html,
        screenshot=screenshot,
        views=status["views"],
        rendered=tuple(status["rendered"]),
        empty=tuple(status["empty"]),
        marks=status["marks"],
        empty_by_switch=status["switches"],
        clipped_by_switch=status["clipped"],
        console_errors=tuple(errors),
        console_warnings=tuple(warnings),
        external_requests=tuple(requests),
        render_ms=status.get("ms"),
        wall_seconds=round(wall, 3),
        chromium=version,
        page_errors=tuple(status["errors"]),
        width=width,
        page_width=int(page_width.get("result", {}).get("value") or 0),
    )


def main(argv: list[str]) -> int:
    """`python -m dashboards.browser PAGE SCREENSHOT`: print the report as JSON; exit 1 unless it is ok."""
    if len(argv) != 2:
        print("usage: python -m dashboards.browser PAGE.html SCREENSHOT.png", file=sys.stderr)
        return 2
    report = check_in_browser(Path(argv[0]), Path(argv[1]))
    print(json.dumps(asdict(report) | {"ok": report.ok}, indent=2, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
