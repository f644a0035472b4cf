"""The preview server answers only its own Host (DNS rebinding) and shows e-mails sandboxed."""

from __future__ import annotations

import http.client
import re

import pytest

from lojal.render.preview import PreviewServer


@pytest.fixture(scope="module")
def server(shipped_paths):
    preview = PreviewServer(shipped_paths, port=0)
    preview.start()
    yield preview
    preview.stop()


def get(server: PreviewServer, path: str, host: str) -> tuple[int, dict, str]:
    address, port = server.httpd.server_address[:2]
    connection = http.client.HTTPConnection(address, port, timeout=10)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read().decode("utf-8", "replace")
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_a_foreign_host_is_refused(server):
    port = server.httpd.server_address[1]
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.attacker.example:{port}", ""):
        status, _, body = get(server, "/index.html", host)
        assert status == 421 and "unknown Host" in body, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        assert get(server, "/index.html", host)[0] == 200, host


def test_emails_are_shown_in_sandboxed_frames(server):
    port = server.httpd.server_address[1]
    _, _, index = get(server, "/index.html", f"127.0.0.1:{port}")
    view = re.search(r'href="(view/[^"]+\.html)"', index).group(1)
    _, _, page = get(server, "/" + view, f"127.0.0.1:{port}")
    frames = re.findall(r"<iframe[^>]*>", page)
    assert len(frames) == 2
    assert all('sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame for frame in frames)
    assert not any("allow-scripts" in frame or "allow-same-origin" in frame for frame in frames)
    email = re.search(r'src="\.\./\.\./\.\./(email/[^"]+)"', page).group(1)
    status, headers, _ = get(server, "/" + email, f"127.0.0.1:{port}")
    assert status == 200 and headers["Content-Security-Policy"].startswith("sandbox ")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
