"""Posting Mail Send requests: one pooled keep-alive httpx client, bounded concurrency, timeouts,
and SendGrid's answers mapped to the delivery contract's outcomes.

    202                      sent (X-Message-Id, accepted_at); 200 = sandbox mode (validated, not delivered)
    400, 413, other 4xx      rejected, with SendGrid's error text (never retried)
    401, 403                 auth: the backend stops the run
    429                      wait for X-RateLimit-Reset (plus jitter) and send again, at most
                             max_rate_wait seconds in total, then failed
    5xx                      failed (the ledger retries it in a later attempt)
    no connection, or an error while writing the request
                             the body never fully left: retried with exponential backoff and full
                             jitter `connect_retries` times, then failed
    timeout or dropped connection after the body was sent
                             unknown: SendGrid may have accepted it; never resent blindly

One `Transport` is shared by the worker threads (httpx.Client is thread-safe); SendGrid's own
client opens a connection per request, has no default timeout and is not thread-safe.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

from lojal.delivery.base import FAILED, REJECTED, SENT, UNKNOWN

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
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        self.concurrency = concurrency
        self.connect_retries = connect_retries
        self.max_rate_wait = max_rate_wait
        self._sleep = sleep
        self._random = rng or random.Random()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=30)
        # TCP_NODELAY: the request head and body leave in two writes; without it Nagle holds the body
        # back until the head is acknowledged (milliseconds per request on a kept-alive connection).
        transport = transport or httpx.HTTPTransport(limits=limits, retries=0,
                                                     socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._url = httpx.URL(base_url.rstrip("/") + MAIL_SEND_PATH)  # parsed once, not per request
        self._client = httpx.Client(
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                     "User-Agent": "lojal"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=timeout + max_rate_wait))
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="lojal-sendgrid") if concurrency > 1 else None

    def __repr__(self) -> str:  # never the key
        return f"Transport({self._url}, concurrency={self.concurrency})"

    def post_many(self, bodies: Sequence[bytes]) -> list[Answer]:
        """Post every body, at most `concurrency` at once; answers in the order given."""
        if self._pool is None or len(bodies) < 2:
            return [self.post(body) for body in bodies]
        return list(self._pool.map(self.post, bodies))

    def post(self, body: bytes) -> Answer:
        tries, waited = 0, 0.0
        while True:
            try:
                response = self._client.post(self._url, content=body)
            except NOT_SENT as exc:
                if tries < self.connect_retries:
                    tries += 1
                    self._sleep(self._random.uniform(0, min(0.2 * 2 ** tries, 5.0)))
                    continue
                return Answer(FAILED, error=f"request not sent after {tries + 1} tries: {_describe(exc)}")
            except httpx.TransportError as exc:
                return Answer(UNKNOWN, error=f"no answer after the request was sent: {_describe(exc)}")
            if response.status_code != 429:
                return answer_for(response.status_code, response.headers, response.text)
            pause = self._rate_pause(response.headers)
            if waited + pause > self.max_rate_wait:
                return Answer(FAILED, status=429, error=(
                    f"rate limited (429) for more than max_rate_wait_seconds={self.max_rate_wait:g}"))
            waited += pause
            self._sleep(pause)

    def _rate_pause(self, headers: httpx.Headers) -> float:
        try:
            reset = float(headers["X-RateLimit-Reset"])
        except (KeyError, ValueError):
            return 1.0 + self._random.uniform(0, 0.5)
        return max(reset - time.time(), 0.0) + self._random.uniform(0.01, 0.25)

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True)
        self._client.close()


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
