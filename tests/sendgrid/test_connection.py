"""The kept-alive connection pool under the SendGrid transport (h11 on asyncio) against a scripted
HTTP server: idle connections the server closed are replaced (not turned into unknown outcomes),
chunked answers and `Connection: close` are understood, an answer cut off half-way is unknown,
and TLS verifies the server's certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import threading
import time

import pytest

from lojal.config import SendGridSettings, Tracking
from lojal.delivery.base import SENT, UNKNOWN
from lojal.sendgrid.backend import SendGridBackend

KEY = "SG.connection-test-key-0123456789"


class ScriptedServer:
    """Answers each request with the next scripted reply (bytes, or None to close without one);
    counts connections and requests. `close_idle` closes a connection right after answering."""

    def __init__(self, replies, close_idle: bool = False, tls: ssl.SSLContext | None = None):
        self.replies, self.close_idle, self.tls = list(replies), close_idle, tls
        self.connections = self.requests = 0
        self.loop = asyncio.new_event_loop()

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                self.requests += 1
                reply = self.replies.pop(0)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_idle or b"connection: close" in reply.lower():
                    await asyncio.sleep(0.05)
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def __enter__(self) -> str:
        ready = threading.Event()

        async def start() -> None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(start()), self.loop.run_forever()),
                                       daemon=True)
        self.thread.start()
        assert ready.wait(5)
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{'localhost' if self.tls else '127.0.0.1'}:{self.server.sockets[0].getsockname()[1]}"

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def accepted(mid: str) -> bytes:
    return f"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nX-Message-Id: {mid}\r\n\r\n".encode()


def backend(url: str, **options) -> SendGridBackend:
    return SendGridBackend(SendGridSettings(concurrency=1, connect_retries=0), Tracking(), api_key=KEY,
                           base_url=url, **options)


def test_a_connection_the_server_closed_while_idle_is_replaced_not_unknown(message):
    server = ScriptedServer([accepted("a"), accepted("b"), accepted("c")], close_idle=True)
    with server as url:
        sender = backend(url)
        results = []
        for i in range(3):
            results += sender.send_batch([message(i)])
            time.sleep(0.2)  # the server closes the idle connection meanwhile
        sender.finish()
    assert [(r.outcome, r.provider_id) for r in results] == [(SENT, "a"), (SENT, "b"), (SENT, "c")]
    assert server.requests == 3 and server.connections == 3


def test_chunked_answers_and_connection_close_are_understood(message):
    parts = [b'{"errors":[{"message":"bad"', b',"field":"to"}]}']
    chunked = (b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n")
    closing = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nX-Message-Id: z\r\nConnection: close\r\n\r\n"
    server = ScriptedServer([chunked, closing, accepted("after")])
    with server as url:
        sender = backend(url)
        results = [r for i in range(3) for r in sender.send_batch([message(i)])]
        sender.finish()
    assert results[0].outcome == "rejected" and results[0].error == "400: to: bad"
    assert [(r.outcome, r.provider_id) for r in results[1:]] == [(SENT, "z"), (SENT, "after")]
    assert server.connections == 2  # one closed by `Connection: close`, then a new one


def test_an_answer_cut_off_half_way_is_unknown_and_not_resent(message):
    half = b"HTTP/1.1 202 Accepted\r\nContent-Length: 50\r\nX-Message-Id: q\r\n\r\n{\"partial\":"
    server = ScriptedServer([half], close_idle=True)
    with server as url:
        [result] = backend(url).send_batch([message(1)])
    assert result.outcome == UNKNOWN and "RemoteProtocolError" in result.error
    assert server.requests == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


def test_tls_verifies_the_servers_certificate(message, certificate):
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with ScriptedServer([accepted("t1"), accepted("t2")], tls=server_tls) as url:
        [untrusted] = backend(url).send_batch([message(1)])  # the default trust store does not know it
        trusted = ssl.create_default_context(cafile=str(cert))
        [ok] = backend(url, tls_context=trusted).send_batch([message(2)])
    assert untrusted.outcome == "failed" and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    assert ok.outcome == SENT and ok.provider_id == "t1"
