"""Kept-alive HTTP/1.1 connections to SendGrid on one asyncio event loop, framed by h11.

h11 (the HTTP/1.1 state machine httpx itself is built on) writes the request and parses the
answer (Content-Length or chunked, keep-alive or close); asyncio owns the sockets and TLS. What
this module adds is small: a bounded pool of connections, timeouts, and which side of "the request
left" an error fell on. It exists because httpx's layers cost 0.6-1.7 ms of CPU per request (sync
client in threads, async client) against 0.1 ms here; see docs/benchmarks.md.

Errors are httpx's exception classes so that one outcome mapping serves both this pool and an
httpx transport (tests' fault doubles):

    ConnectError, ConnectTimeout   no connection: the request never left (retried)
    ReadTimeout                    the request was handed to the OS, no complete answer in time
    RemoteProtocolError, ReadError the connection closed or broke after the request was handed
                                   to the OS: SendGrid may have accepted it (unknown)

"Handed to the OS" counts as sent: once `transport.write` took the bytes nobody can tell how many
the server read. A connection the server closed while idle is noticed before reuse (EOF seen by the
event loop) and replaced, so idle closes do not turn into unknown outcomes.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import h11
import httpx

log = logging.getLogger("lojal.sendgrid")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    text: str


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = time.monotonic()
        self._wake: asyncio.Future | None = None

    # asyncio.Protocol callbacks (run by the event loop)
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.h11.receive_data(data)
        self._notify()

    def eof_received(self) -> bool:
        self.h11.receive_data(b"")
        self._notify()
        return False

    def connection_lost(self, exc) -> None:
        self.lost = True
        self._notify()

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    @property
    def reusable(self) -> bool:
        return (not self.lost and self.h11.our_state is h11.IDLE and self.h11.their_state is h11.IDLE
                and self.h11.trailing_data == (b"", False) and not self.transport.is_closing())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.lost = True

    async def exchange(self, request: bytes, timeout: float) -> Reply:
        """Write one framed request, read its answer."""
        self.transport.write(request)
        status, headers, chunks = None, None, []
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:  # e.g. closed half-way through the answer
                raise httpx.RemoteProtocolError(f"broken answer: {exc}") from None
            if event is h11.NEED_DATA:
                await self._wait(timeout)
            elif isinstance(event, h11.Response):
                status, headers = event.status_code, event.headers
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("the server closed the connection without a complete answer")
        self._after_answer()
        text = b"".join(chunks).decode("utf-8", "replace")
        return Reply(status, httpx.Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]), text)

    async def _wait(self, timeout: float) -> None:
        if self.lost:
            raise httpx.RemoteProtocolError("the server closed the connection without a complete answer")
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._wake, timeout)
        except asyncio.TimeoutError:
            raise httpx.ReadTimeout(f"no answer within {timeout:g} s") from None
        finally:
            self._wake = None

    def _after_answer(self) -> None:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            self.idle_since = time.monotonic()
        else:  # Connection: close, or an answer before the request was complete
            self.close()


class Withdrawn(Exception):
    """The request was not posted: its caller withdrew it while it waited for a connection."""


class ConnectionPool:
    """At most `size` connections to one origin, kept alive between requests (`keepalive` seconds idle)."""

    def __init__(self, url: httpx.URL, head: dict[str, str], *, size: int, connect_timeout: float,
                 timeout: float, keepalive: float = 30.0, tls_context: ssl.SSLContext | None = None):
        self.url = url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self._tls = (tls_context or ssl.create_default_context()) if url.scheme == "https" else None
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._target = url.raw_path
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        self._headers = [("Host", host), *head.items()]
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(size)

    async def post(self, body: bytes, withdrawn: Callable[[], bool] = lambda: False) -> Reply:
        """POST `body`; once a connection is free, `withdrawn()` true means Withdrawn, nothing sent."""
        async with self._slots:
            if withdrawn():
                raise Withdrawn
            connection = await self._connection()
            try:
                reply = await connection.exchange(self._frame(connection, body), self.timeout)
            except BaseException:
                connection.close()
                raise
            if connection.reusable:
                self._idle.append(connection)
            log.debug("POST %s -> %s", self.url, reply.status)
            return reply

    def _frame(self, connection: _Connection, body: bytes) -> bytes:
        request = h11.Request(method="POST", target=self._target,
                              headers=[*self._headers, ("Content-Length", str(len(body)))])
        return connection.h11.send(request) + connection.h11.send(h11.Data(data=body)) + \
            connection.h11.send(h11.EndOfMessage())

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable and now - connection.idle_since < self.keepalive:
                return connection
            connection.close()
        return await self._open()

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(loop.create_connection(
                _Connection, self.url.host, self._port, ssl=self._tls,
                server_hostname=self.url.host if self._tls else None), self.connect_timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {self.url.host}:{self._port} within "
                                       f"{self.connect_timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {self.url.host}:{self._port}: {exc}") from None
        return connection  # asyncio sets TCP_NODELAY on TCP sockets itself

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
