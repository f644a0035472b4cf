"""Posting Mail Send requests: bounded concurrency on one event loop, kept-alive connections,
timeouts, and SendGrid's answers mapped to the delivery contract's outcomes.

    202                      sent (X-Message-Id, accepted_at); 200 = sandbox mode (validated, not delivered)
    400, 413, other 4xx      rejected, with SendGrid's error text (never retried)
    401, 403                 auth: the backend stops the run; requests of the same call still
                             waiting for a connection are not posted (answered as refused, not sent)
    429                      wait for X-RateLimit-Reset (plus jitter) and send again, at most
                             max_rate_wait seconds in total, then failed
    5xx                      failed (the ledger retries it in a later attempt)
    no connection (refused, unreachable, TLS refused, connect timeout)
                             the request never left: retried with exponential backoff and full
                             jitter `connect_retries` times, then failed
    timeout, dropped connection or a cut-off answer once the request was handed to the OS
                             unknown: SendGrid may have accepted it; never resent blindly

One `Transport` runs its own event loop in one background thread: `post_many` hands it a window of
bodies and blocks until every one has an answer; at most `concurrency` requests are in flight, over
at most `concurrency` kept-alive connections (`lojal.sendgrid.connection`, h11 on asyncio). An
httpx transport may be passed instead (tests stage faults with httpx.MockTransport); the outcome
mapping is the same. SendGrid's own client opens a connection per request, has no default timeout
and is not thread-safe.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

from lojal.delivery.base import FAILED, REJECTED, SENT, UNKNOWN
from lojal.sendgrid.connection import ConnectionPool, Reply, Withdrawn

MAIL_SEND_PATH = "/v3/mail/send"
# Raised before the request was completely written: SendGrid cannot have accepted it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError, httpx.WriteTimeout,
            httpx.UnsupportedProtocol)
MAX_ERROR_TEXT = 1000


@dataclass(frozen=True)
class Answer:
    """What one request (with its in-attempt retries) came to."""

    outcome: str | None           # sent | rejected | failed | unknown; None when refused for the key
    provider_id: str | None = None
    error: str | None = None
    accepted_at: datetime | None = None
    status: int | None = None

    @property
    def auth_refused(self) -> bool:
        return self.status in (401, 403)


class Transport:
    def __init__(self, base_url: str, api_key: str, *, concurrency: int = 16, connect_timeout: float = 5,
                 timeout: float = 30, connect_retries: int = 3, max_rate_wait: float = 60,
                 transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Callable[[float], Awaitable | None] = asyncio.sleep, rng: random.Random | None = None,
                 tls_context: ssl.SSLContext | None = None):
        self.concurrency = concurrency
        self.connect_retries = connect_retries
        self.max_rate_wait = max_rate_wait
        self._sleep = sleep
        self._random = rng or random.Random()
        self._url = httpx.URL(base_url.rstrip("/") + MAIL_SEND_PATH)  # parsed once, not per request
        self._head = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                      "User-Agent": "lojal"}
        self._timeouts = (connect_timeout, timeout)
        self._httpx_transport = transport
        self._tls_context = tls_context  # None: the system's trust store (ssl.create_default_context)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        self._exchange: Callable[[bytes], Awaitable[Reply]] | None = None
        self._closers: list[Callable[[], Awaitable | None]] = []

    def __repr__(self) -> str:  # never the key
        return f"Transport({self._url}, concurrency={self.concurrency})"

    def post_many(self, bodies: Sequence[bytes]) -> list[Answer]:
        """Post every body, at most `concurrency` at once; answers in the order given. Once SendGrid
        refuses the key (401, 403), the bodies still waiting for a slot are not posted: each gets
        that refusal, as not sent."""
        return self._run(self._post_all(bodies))

    def post(self, body: bytes) -> Answer:
        return self.post_many([body])[0]

    async def _post_all(self, bodies: Sequence[bytes]) -> list[Answer]:
        if self._exchange is None:
            self._exchange = self._open()
        refused: list[Answer] = []  # this call's first refusal of the key
        return list(await asyncio.gather(*(self._post(body, refused) for body in bodies)))

    def _open(self) -> Callable[..., Awaitable[Reply]]:
        connect_timeout, timeout = self._timeouts
        if self._httpx_transport is None:
            pool = ConnectionPool(self._url, self._head, size=self.concurrency, connect_timeout=connect_timeout,
                                  timeout=timeout, tls_context=self._tls_context)
            self._closers.append(pool.close)
            return pool.post
        client = httpx.AsyncClient(transport=self._httpx_transport, headers=self._head,
                                   timeout=httpx.Timeout(timeout, connect=connect_timeout))
        slots = asyncio.Semaphore(self.concurrency)
        self._closers.append(client.aclose)

        async def exchange(body: bytes, withdrawn: Callable[[], bool] = lambda: False) -> Reply:
            async with slots:
                if withdrawn():
                    raise Withdrawn
                response = await client.post(self._url, content=body)
                return Reply(response.status_code, response.headers, response.text)
        return exchange

    async def _post(self, body: bytes, refused: list[Answer]) -> Answer:
        tries, waited = 0, 0.0
        while True:
            try:
                reply = await self._exchange(body, lambda: bool(refused))
            except NOT_SENT as exc:
                if tries < self.connect_retries:
                    tries += 1
                    await self._pause(self._random.uniform(0, min(0.2 * 2 ** tries, 5.0)))
                    continue
                return Answer(FAILED, error=f"request not sent after {tries + 1} tries: {_describe(exc)}")
            except httpx.TransportError as exc:
                return Answer(UNKNOWN, error=f"no answer after the request was sent: {_describe(exc)}")
            except Withdrawn:
                first = refused[0]
                return Answer(None, status=first.status, error=f"not sent: {first.error}")
            if reply.status != 429:
                answer = answer_for(reply.status, reply.headers, reply.text)
                if answer.auth_refused and not refused:
                    refused.append(answer)
                return answer
            pause = self._rate_pause(reply.headers)
            if waited + pause > self.max_rate_wait:
                return Answer(FAILED, status=429, error=(
                    f"rate limited (429) for more than max_rate_wait_seconds={self.max_rate_wait:g}"))
            waited += pause
            await self._pause(pause)

    async def _pause(self, seconds: float) -> None:
        result = self._sleep(seconds)
        if inspect.isawaitable(result):
            await result

    def _rate_pause(self, headers: httpx.Headers) -> float:
        try:
            reset = float(headers["X-RateLimit-Reset"])
        except (KeyError, ValueError):
            return 1.0 + self._random.uniform(0, 0.5)
        return max(reset - time.time(), 0.0) + self._random.uniform(0.01, 0.25)

    # ---- the event loop thread ---------------------------------------------------------------
    def _run(self, coroutine):
        with self._starting:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="lojal-sendgrid", daemon=True)
                self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        if self._loop is None:
            return
        self._run(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = self._exchange = None

    async def _close_all(self) -> None:
        for closer in self._closers:
            result = closer()
            if inspect.isawaitable(result):
                await result
        self._closers.clear()
        await asyncio.sleep(0)  # let the closed transports finish


def answer_for(status: int, headers, text: str) -> Answer:
    """Map one HTTP answer from Mail Send (not 429) to an outcome."""
    if status == 202:
        return Answer(SENT, provider_id=headers.get("X-Message-Id"), status=status,
                      accepted_at=datetime.now(timezone.utc).replace(tzinfo=None))
    if status == 200:  # sandbox mode: validated, nothing delivered
        return Answer(SENT, status=status, error="sandbox mode: validated by SendGrid, not delivered",
                      accepted_at=datetime.now(timezone.utc).replace(tzinfo=None))
    if status in (401, 403):
        return Answer(None, status=status, error=f"{status}: {error_text(text)}")
    if 400 <= status < 500:
        return Answer(REJECTED, status=status, error=f"{status}: {error_text(text)}")
    return Answer(FAILED, status=status, error=f"SendGrid answered {status}: {error_text(text)}")


def error_text(text: str) -> str:
    """SendGrid's `{"errors": [{"message", "field"}]}` as one line: `field: message; ...`."""
    import json

    try:
        errors = json.loads(text)["errors"]
        parts = [f"{e['field']}: {e['message']}" if e.get("field") else str(e.get("message")) for e in errors]
        line = "; ".join(parts)
    except (ValueError, KeyError, TypeError, AttributeError):
        line = " ".join(text.split())
    return (line or "(no error text)")[:MAX_ERROR_TEXT]


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
