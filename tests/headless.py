"""Real headless Chromium for tests of web pages (Debian's `chromium`; skipped with a reason
where it is not installed), and a small PNG decoder to look at its screenshots."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's `chromium` (installed by `make browser` "
                                    "as root: apt-get install chromium)")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


def screenshot(tmp_path: Path, url: str, shot: Path, width: int, height: int) -> Path:
    """A PNG of `url` at width x height CSS pixels (scale 1, no scroll bars), taken once the page
    and everything it loads (frames, images) has settled: headless Chromium runs the page in virtual
    time and only shoots when network and timers are idle, so a slow machine gets the same picture
    as a fast one instead of a frame not yet painted."""
    chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},{height}", "--hide-scrollbars",
             "--force-device-scale-factor=1", "--virtual-time-budget=15000",
             "--run-all-compositor-stages-before-draw", url)
    return shot


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunk = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        position += 12 + length
    width, height, depth, color_type, _, _, interlace = header
    assert depth == 8 and color_type in (2, 6) and interlace == 0, header
    channels = 3 if color_type == 2 else 4
    raw, stride, previous, rows = zlib.decompress(idat), width * channels, bytearray(width * channels), []
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        rows.append(bytes(line[c] for i in range(0, stride, channels) for c in range(i, i + 3)))
        previous = line
    return width, height, rows


def count_pixels(rows: list[bytes], colour: tuple[int, int, int], x_from: int = 0, x_to: int | None = None,
                 tolerance: int = 4) -> int:
    """Pixels of a decoded screenshot with `colour` (each channel within `tolerance`) in columns
    x_from..x_to."""
    count = 0
    for row in rows:
        for x in range(x_from, min(x_to or len(row) // 3, len(row) // 3)):
            if all(abs(row[3 * x + c] - colour[c]) <= tolerance for c in range(3)):
                count += 1
    return count


@contextmanager
def live_page(tmp_path: Path, url: str) -> Iterator[Callable[[str], object]]:
    """A page kept open in headless Chromium, driven over the DevTools protocol: yields a function
    that evaluates a JavaScript expression in the page (whatever page it has navigated or reloaded to)."""
    from websockets.sync.client import connect

    port = _free_port()
    process = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                f"--remote-debugging-port={port}", "--remote-allow-origins=*",
                                f"--user-data-dir={tmp_path / 'chromium-live'}", url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with connect(_page_socket(port, url), max_size=None) as socket_:
            calls = iter(range(1, 1_000_000))

            def evaluate(expression: str) -> object:
                call = next(calls)
                socket_.send(json.dumps({"id": call, "method": "Runtime.evaluate",
                                         "params": {"expression": expression, "returnByValue": True}}))
                while True:
                    reply = json.loads(socket_.recv(timeout=30))
                    if reply.get("id") == call:
                        return reply["result"]["result"].get("value")

            yield evaluate
    finally:
        process.terminate()
        process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _page_socket(port: int, url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                targets = json.loads(response.read())
            for target in targets:
                if target.get("type") == "page" and target.get("url") == url:
                    return target["webSocketDebuggerUrl"]
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Chromium did not open {url} with DevTools on port {port}")
        time.sleep(0.2)


def wait_for(check: Callable[[], bool], timeout: float = 20) -> bool:
    """Poll `check` until it holds or `timeout` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
