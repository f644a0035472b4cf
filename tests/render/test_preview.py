"""`lojal preview`: static pages, a server that rebuilds when templates change, and what a real
headless Chromium shows (skipped with a reason when Debian's `chromium` is not installed)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
import urllib.request
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lojal.render.cli import app
from lojal.render.preview import PreviewServer

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's `chromium` (installed by `make browser` "
                                    "as root: apt-get install chromium)")
BRAND_BLUE = (0x1F, 0x5F, 0x8B)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8")


@pytest.fixture
def server(project):
    preview = PreviewServer(project, port=0)
    preview.start()
    yield preview
    preview.stop()


@pytest.fixture(scope="module")
def shipped_server(shipped_paths):
    """Read-only server on the shipped project, shared by the browser tests."""
    preview = PreviewServer(shipped_paths, port=0)
    preview.start()
    yield preview
    preview.stop()


def test_preview_out_writes_every_campaign_locale_and_sample(project, tmp_path):
    out = tmp_path / "site"
    result = CliRunner().invoke(app, ["--out", str(out), "--project", str(project.project)])
    assert result.exit_code == 0, result.output
    assert "Wrote 35 previews" in result.output  # 7 campaigns x 5 sample customers (2 in nb)
    view = (out / "view" / "birthday" / "nb" / "nb-bjorn.html").read_text()
    assert "Gratulerer med dagen, Bjørn Åge!" in view and 'src="../../../email/birthday/nb/nb-bjorn.html"' in view
    assert "Meld deg av" in (out / "email" / "birthday" / "nb" / "nb-bjorn.html").read_text()
    assert "Nordlys Hjem AS, Storgata 1" in (out / "text" / "birthday" / "nb" / "nb-bjorn.txt").read_text()
    assert "__version" not in view  # static pages do not poll a server


def test_preview_without_out_or_command_shows_help():
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2 and "serve" in result.output


def test_server_rebuilds_when_a_template_changes(server, project):
    page = server.url + "view/win_back/sv/sv-asa.html"
    assert "Åsa, kom och se vad som är nytt" in _get(page)
    assert _get(server.url + "__version") == "0"
    strings = project.templates_dir / "win_back" / "strings.yaml"
    strings.write_text(strings.read_text().replace("kom och se vad som är nytt", "välkommen tillbaka"))
    deadline = time.monotonic() + 20
    while _get(server.url + "__version") == "0" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _get(server.url + "__version") == "1"
    assert "Åsa, välkommen tillbaka" in _get(page)


def test_server_shows_problems_of_a_broken_template(server, project):
    email = project.templates_dir / "survey" / "email.mjml"
    email.write_text(email.read_text().replace("</mj-group>", "</mj-section>", 1))
    assert server.rebuild_if_changed()
    index = _get(server.url)
    assert 'id="problems"' in index and "templates/survey/email.mjml:" in index


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


def _decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
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


def _brand_pixels(rows: list[bytes], x_from: int, x_to: int) -> int:
    count = 0
    for row in rows:
        for x in range(x_from, min(x_to, len(row) // 3)):
            if all(abs(row[3 * x + c] - BRAND_BLUE[c]) <= 4 for c in range(3)):
                count += 1
    return count


@pytest.mark.browser
@needs_chromium
def test_chromium_renders_the_email_page(shipped_server, tmp_path):
    result = _chromium(tmp_path, "--dump-dom", shipped_server.url + "email/post_purchase/da/da-soren.html")
    assert "Tak for din bestilling!" in result.stdout and "Hej Søren Æblø," in result.stdout
    assert "Afmeld" in result.stdout and "Nordlys Hjem AS, Storgata 1, 0155 Oslo, Norway" in result.stdout


@pytest.mark.browser
@needs_chromium
def test_chromium_screenshot_shows_the_email_at_desktop_and_mobile_width(shipped_server, tmp_path):
    page = shipped_server.url + "view/survey/da/da-soren.html"
    dom = _chromium(tmp_path, "--dump-dom", page).stdout
    assert "Hvordan var din bestilling, Søren Æblø?" in dom and 'id="desktop"' in dom and 'id="mobile"' in dom
    shot = tmp_path / "view.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,700", "--hide-scrollbars", page)
    width, height, rows = _decode_png(shot.read_bytes())
    assert (width, height) == (1100, 700)
    # The five rating buttons are brand blue, drawn inside each iframe: desktop frame starts at
    # x=24 (640 px wide), the mobile frame to its right (375 px).
    assert _brand_pixels(rows, 24, 24 + 640) > 5 * 1000
    assert _brand_pixels(rows, 24 + 640 + 20, 1100) > 5 * 1000
    assert _brand_pixels(rows, 0, 20) == 0  # left margin of the page: no e-mail there
