"""The strict local SendGrid: v3 Mail Send on loopback, for development, tests, the demo and benchmarks.

It answers the way SendGrid does (401 for a wrong Bearer key, 400 with SendGrid's error bodies
for every rule in `rules.py`, 413 over 30 MB, 429 with `X-RateLimit-*` past a configured rate,
202 with `X-Message-Id`), can inject faults (500s, latency, connections dropped after the body was
read), counts what it accepted (`GET /_local/stats`, `GET /_local/accepted`, or `.accepted` in
process) and posts signed Event Webhook batches for what it accepted to `webhook_url`, retrying
while the receiver answers non-2xx.

A small asyncio HTTP/1.1 server (keep-alive, Content-Length bodies): owning the socket is what
lets it drop a connection after reading a request, which no ASGI server allows.

In tests: `with LocalSendGrid(LocalOptions(...)) as sg: ... sg.url ... sg.stats()`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import orjson

from lojal.sendgrid.rules import MAX_BODY_BYTES, error_body, validate_mail_send
from lojal.sendgrid.webhook import new_private_key, public_key_text, signed_headers

MAIL_SEND_PATH = "/v3/mail/send"
SUPPRESSION_KINDS = ("bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes")
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
            429: "Too Many Requests", 500: "Internal Server Error"}
# Of every accepted message: how often each later event happens (processed always happens).
DEFAULT_EVENT_RATES = {"delivered": 0.93, "deferred": 0.03, "bounce": 0.02, "dropped": 0.01, "open": 0.45,
                       "machine_open": 0.15, "click": 0.12, "spamreport": 0.002, "unsubscribe": 0.01,
                       "group_unsubscribe": 0.005}


@dataclass
class LocalOptions:
    api_key: str | None = None          # None: any non-empty Bearer key is accepted
    rate_limit: int = 0                 # requests per second before 429 (0: unlimited)
    rate_limit_every: float = 0.0       # >0: the rate limit holds only in the first `rate_limit_for`
    rate_limit_for: float = 1.0         #     seconds of every `rate_limit_every` (429 bursts at any speed)
    error_rate: float = 0.0             # share of requests answered 500 (nothing accepted)
    latency_ms: float = 0.0             # added before every Mail Send answer
    drop_rate: float = 0.0              # share of requests whose connection is closed after the body was read
    drop_accepted_share: float = 0.5    # of those, the share SendGrid had accepted all the same
    webhook_url: str | None = None
    event_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_RATES))
    webhook_batch_size: int = 500
    webhook_interval: float = 0.2       # seconds between batches when fewer than a batch wait
    keep_bodies: bool = True            # keep every accepted request body (tests); off for benchmarks
    seed: int | None = None


@dataclass
class Accepted:
    provider_id: str
    message_ids: list[str]   # custom_args lojal_message_id, per personalization
    to: list[str]
    at: float
    body: dict | None


class LocalSendGrid:
    def __init__(self, options: LocalOptions | None = None, host: str = "127.0.0.1", port: int = 0):
        self.options = options or LocalOptions()
        self.host, self.port = host, port
        self.signing_key = new_private_key()
        self.public_key = public_key_text(self.signing_key)
        self.accepted: list[Accepted] = []
        self.counts: Counter = Counter()
        self._seen: set[str] = set()
        self._events: deque = deque()
        self._random = random.Random(self.options.seed)
        self._window = (0, 0)  # (second, requests in it)
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._poster: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        # Suppression lists served at /v3/suppression/<kind> and /v3/asm/groups/<id>/suppressions;
        # bounce, spamreport, unsubscribe and group_unsubscribe events this server emits are added to them.
        self.suppression_lists: dict[str, list[dict]] = {kind: [] for kind in SUPPRESSION_KINDS}
        self.group_suppressions: dict[int, list[str]] = {}

    # ---- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start_async(self) -> None:
        self._wake = asyncio.Event()
        self._server = await asyncio.start_server(self._connection, self.host, self.port, limit=256 * 1024,
                                                  backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.options.webhook_url:
            self._poster = asyncio.create_task(self._post_events())

    async def stop_async(self) -> None:
        if self._poster:
            self._poster.cancel()
            await asyncio.gather(self._poster, return_exceptions=True)
        if self._server:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def start(self) -> "LocalSendGrid":
        """Serve from a background thread (in-process use from tests); returns once listening."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start_async())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="local-sendgrid", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the local SendGrid did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            asyncio.run_coroutine_threadsafe(self.stop_async(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> "LocalSendGrid":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- what tests look at ------------------------------------------------------------------
    def stats(self) -> dict:
        counts = dict(self.counts)
        return {"accepted": counts.get("accepted", 0), "requests": counts.get("requests", 0),
                "duplicates": counts.get("duplicates", 0), "rejected": counts.get("rejected", 0),
                "unauthorized": counts.get("unauthorized", 0), "rate_limited": counts.get("rate_limited", 0),
                "server_errors": counts.get("server_errors", 0), "dropped": counts.get("dropped", 0),
                "dropped_accepted": counts.get("dropped_accepted", 0), "sandboxed": counts.get("sandboxed", 0),
                "distinct_message_ids": len(self._seen), "connections": counts.get("connections", 0),
                "max_in_flight": counts.get("max_in_flight", 0),
                "events_generated": counts.get("events_generated", 0),
                "events_posted": counts.get("events_posted", 0), "events_pending": len(self._events),
                "webhook_posts": counts.get("webhook_posts", 0),
                "webhook_failures": counts.get("webhook_failures", 0)}

    def accepted_message_ids(self) -> Counter:
        """How many times each Lojal message id was accepted (1 everywhere = exactly once)."""
        return Counter(mid for a in list(self.accepted) for mid in a.message_ids)

    def wait_for_events(self, timeout: float = 30.0) -> bool:
        """Block until every generated event was posted to the webhook (True) or the timeout passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._events and self.counts["events_posted"] >= self.counts["events_generated"]:
                return True
            time.sleep(0.05)
        return False

    # ---- HTTP --------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts["connections"] += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                method, path, version, headers = _parse_head(head)
                if "chunked" in headers.get("transfer-encoding", "").lower() or (
                        method == "POST" and "content-length" not in headers):
                    await _respond(writer, 411, error_body(("Content-Length is required", None)), close=True)
                    return
                length = int(headers.get("content-length", "0") or 0)
                keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                answer = await self._route(method, path, headers, reader, length)
                if answer is None:  # fault: drop the connection without an answer
                    writer.transport.abort()
                    return
                status, body, extra = answer
                await _respond(writer, status, body, extra, close=not keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _route(self, method, target, headers, reader, length):
        path, _, query = target.partition("?")
        if path == MAIL_SEND_PATH and method == "POST":
            return await self._mail_send(headers, reader, length)
        await _discard(reader, length)
        if method == "GET" and path == "/_local/stats":
            return 200, self.stats(), {}
        if method == "GET" and path.startswith("/_local/accepted"):
            return 200, [{"provider_id": a.provider_id, "message_ids": a.message_ids, "to": a.to, "at": a.at}
                         for a in list(self.accepted)], {}
        if method == "GET" and path == "/_local/public-key":
            return 200, {"public_key": self.public_key}, {}
        if method == "GET" and (path.startswith("/v3/suppression/") or path.startswith("/v3/asm/")):
            return self._suppressions(path, parse_qs(query), headers)
        return 404, error_body((f"no route {method} {path}", None)), {}

    async def _mail_send(self, headers, reader, length):
        self.counts["requests"] += 1
        self._in_flight += 1
        self.counts["max_in_flight"] = max(self.counts["max_in_flight"], self._in_flight)
        try:
            return await self._mail_send_checked(headers, reader, length)
        finally:
            self._in_flight -= 1

    async def _mail_send_checked(self, headers, reader, length):
        if not self._authorized(headers.get("authorization", "")):
            await _discard(reader, length)
            self.counts["unauthorized"] += 1
            return 401, error_body(("The provided authorization grant is invalid, expired, or revoked", None)), {}
        limited = self._rate_limit()
        if limited is not None:
            await _discard(reader, length)
            self.counts["rate_limited"] += 1
            return 429, error_body(("too many requests", None)), limited
        if length > MAX_BODY_BYTES:
            await _discard(reader, length)
            self.counts["rejected"] += 1
            return 413, error_body(("The JSON payload you have included in your request is too large. "
                                    "Maximum payload size is 30 MB.", None)), {}
        raw = await reader.readexactly(length)
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000 * self._random.uniform(0.5, 1.5))
        return self._decide(raw)

    def _decide(self, raw: bytes):
        roll = self._random.random()
        if roll < self.options.error_rate:
            self.counts["server_errors"] += 1
            return 500, error_body(("internal server error (injected by the local SendGrid)", None)), {}
        try:
            body = orjson.loads(raw)  # strict JSON, as SendGrid's: no NaN, no invalid UTF-8
        except orjson.JSONDecodeError:
            self.counts["rejected"] += 1
            return 400, error_body(("Bad Request: the request body is not valid JSON", None)), {}
        errors = validate_mail_send(body, time.time())
        if errors:
            self.counts["rejected"] += 1
            return 400, error_body(*errors), {}
        if (body.get("mail_settings") or {}).get("sandbox_mode", {}).get("enable"):
            self.counts["sandboxed"] += 1
            return 200, None, {}
        if roll < self.options.error_rate + self.options.drop_rate:
            self.counts["dropped"] += 1
            if self._random.random() < self.options.drop_accepted_share:
                self.counts["dropped_accepted"] += 1
                self._accept(body)
            return None
        return 202, None, {"X-Message-Id": self._accept(body)}

    def _authorized(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return self.options.api_key is None or secrets.compare_digest(token.strip(), self.options.api_key)

    def _rate_limit(self) -> dict | None:
        limit, every = self.options.rate_limit, self.options.rate_limit_every
        now = time.time()
        if not limit or (every and now % every >= self.options.rate_limit_for):
            return None
        second = int(now)
        window, used = self._window if self._window[0] == second else (second, 0)
        reset = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Reset": str(second + 1)}
        if used >= limit:
            return {**reset, "X-RateLimit-Remaining": "0"}
        self._window = (second, used + 1)
        return None

    def _accept(self, body: dict) -> str:
        provider_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")
        base_args = body.get("custom_args") or {}
        ids, to = [], []
        for personalization in body["personalizations"]:
            args = {**base_args, **(personalization.get("custom_args") or {})}
            mid = args.get("lojal_message_id")
            if mid:
                ids.append(mid)
                if mid in self._seen:
                    self.counts["duplicates"] += 1
                self._seen.add(mid)
            to += [r["email"] for r in personalization["to"]]
            if self.options.webhook_url:
                for email in personalization["to"]:
                    self._queue_events(provider_id, email["email"], args, body.get("categories") or [])
        self.accepted.append(Accepted(provider_id, ids, to, time.time(),
                                      body if self.options.keep_bodies else None))
        self.counts["accepted"] += 1
        return provider_id

    # ---- suppression lists (GET only, as `lojal suppressions sync` reads them) ---------------
    def add_suppression(self, kind: str, email: str, created: int | None = None, group_id: int | None = None,
                        **extra) -> None:
        """Put an address on one of the lists (kind: a SUPPRESSION_KINDS entry, or `group` with group_id)."""
        if kind == "group":
            self.group_suppressions.setdefault(int(group_id), []).append(email)
            return
        self.suppression_lists[kind].append({"created": int(created or time.time()), "email": email, **extra})

    def _suppressions(self, path: str, query: dict, headers: dict):
        if not self._authorized(headers.get("authorization", "")):
            return 401, error_body(("authorization required", None)), {}
        parts = path.strip("/").split("/")
        if parts[:2] == ["v3", "suppression"] and len(parts) == 3 and parts[2] in SUPPRESSION_KINDS:
            return self._page(self.suppression_lists[parts[2]], query)
        if parts == ["v3", "asm", "groups"]:
            return 200, [{"id": gid, "name": f"group {gid}", "description": "", "is_default": False,
                          "unsubscribes": len(emails)} for gid, emails in sorted(self.group_suppressions.items())], {}
        if len(parts) == 5 and parts[:3] == ["v3", "asm", "groups"] and parts[4] == "suppressions" and parts[3].isdigit():
            return 200, list(self.group_suppressions.get(int(parts[3]), [])), {}
        return 404, error_body((f"no route GET {path}", None)), {}

    def _page(self, rows: list[dict], query: dict):
        try:
            limit = int(query.get("limit", ["500"])[0])
            offset = int(query.get("offset", ["0"])[0])
            start = int(query["start_time"][0]) if "start_time" in query else None
        except ValueError:
            return 400, error_body(("limit, offset and start_time must be integers", None)), {}
        if not 1 <= limit <= 500 or offset < 0:
            return 400, error_body(("limit must be 1..500 and offset >= 0", "limit")), {}
        chosen = [r for r in rows if start is None or r["created"] >= start]
        return 200, chosen[offset:offset + limit], {}

    def _remember_suppressions(self, events: list[dict]) -> None:
        for event in events:
            kind, email, created = event.get("event"), event.get("email"), event.get("timestamp")
            if kind == "bounce" and event.get("type") == "bounce":
                self.add_suppression("bounces", email, created, reason=event.get("reason", ""),
                                     status=event.get("status", "5.0.0"))
            elif kind == "bounce":
                self.add_suppression("blocks", email, created, reason=event.get("reason", ""))
            elif kind == "spamreport":
                self.add_suppression("spam_reports", email, created)
            elif kind == "unsubscribe":
                self.add_suppression("unsubscribes", email, created)
            elif kind == "group_unsubscribe" and event.get("asm_group_id") is not None:
                self.add_suppression("group", email, group_id=event["asm_group_id"])

    # ---- the Event Webhook -------------------------------------------------------------------
    def _queue_events(self, provider_id: str, email: str, args: dict, categories: list[str]) -> None:
        events = message_events(self._random, self.options.event_rates, provider_id, email, args, categories,
                                time.time())
        self._events.extend(events)
        self._remember_suppressions(events)
        self.counts["events_generated"] += len(events)
        if self._wake and len(self._events) >= self.options.webhook_batch_size:
            self._wake.set()

    async def _post_events(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while True:
                if len(self._events) < self.options.webhook_batch_size:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.options.webhook_interval)
                    except asyncio.TimeoutError:
                        pass
                    self._wake.clear()
                if not self._events:
                    continue
                batch = [self._events.popleft() for _ in range(min(len(self._events), self.options.webhook_batch_size))]
                await self._deliver_batch(client, batch)

    async def _deliver_batch(self, client: httpx.AsyncClient, batch: list[dict]) -> None:
        body = json.dumps(batch, separators=(",", ":")).encode("utf-8")
        pause = 0.1
        while True:
            self.counts["webhook_posts"] += 1
            try:
                response = await client.post(self.options.webhook_url, content=body,
                                             headers=signed_headers(self.signing_key, body))
                if 200 <= response.status_code < 300:
                    self.counts["events_posted"] += len(batch)
                    return
            except httpx.HTTPError:
                pass
            self.counts["webhook_failures"] += 1
            await asyncio.sleep(pause * self._random.uniform(0.5, 1.0))
            pause = min(pause * 2, 5.0)


def message_events(rng: random.Random, rates: dict[str, float], provider_id: str, email: str, args: dict,
                   categories: list[str], now: float) -> list[dict]:
    """SendGrid-shaped events for one accepted recipient: always `processed`, then at the configured
    rates a `deferred`, one fate (`dropped`, `bounce` or `delivered`), and after delivery opens
    (some machine opens, flagged `sg_machine_open`), clicks, spam reports and unsubscribes."""
    counter = iter(range(100))

    def event(kind: str, **extra) -> dict:
        stamp = int(now) + next(counter)
        return {"email": email, "timestamp": stamp, "event": kind, "category": list(categories),
                "sg_event_id": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode("ascii").rstrip("="),
                "sg_message_id": f"{provider_id}.recvd-local-1-{stamp}-0.0",
                "smtp-id": f"<{provider_id}@local.sendgrid.net>", **args, **extra}

    events = [event("processed")]
    if rng.random() < rates.get("deferred", 0):
        events.append(event("deferred", response="400 try again later", attempt="1"))
    fate = rng.random()
    if fate < rates.get("dropped", 0):
        return events + [event("dropped", reason="Bounced Address", status="5.0.0")]
    if fate < rates.get("dropped", 0) + rates.get("bounce", 0):
        return events + [event("bounce", type="bounce", status="5.1.1", bounce_classification="Invalid Address",
                               reason="550 5.1.1 The email account that you tried to reach does not exist.")]
    events.append(event("delivered", response="250 OK"))
    if rng.random() < rates.get("open", 0):
        machine = rng.random() < rates.get("machine_open", 0)
        events.append(event("open", useragent="Mozilla/5.0", ip="127.0.0.1", sg_machine_open=machine))
    if rng.random() < rates.get("click", 0):
        events.append(event("click", url="https://shop.example/p/1?utm_source=lojal", useragent="Mozilla/5.0",
                            ip="127.0.0.1"))
    if rng.random() < rates.get("spamreport", 0):
        events.append(event("spamreport"))
    if rng.random() < rates.get("unsubscribe", 0):
        events.append(event("unsubscribe"))
    if rng.random() < rates.get("group_unsubscribe", 0):
        events.append(event("group_unsubscribe", asm_group_id=1))
    return events


def parse_event_rates(text: str) -> dict[str, float]:
    """`delivered=0.9,open=0.5` -> rates over the defaults; unknown kinds are an error."""
    rates = dict(DEFAULT_EVENT_RATES)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in DEFAULT_EVENT_RATES:
            raise ValueError(f"unknown event kind {name!r} in --event-rates; use {', '.join(DEFAULT_EVENT_RATES)}")
        rates[name] = float(value)
        if not 0 <= rates[name] <= 1:
            raise ValueError(f"--event-rates {name}={value}: a rate is between 0 and 1")
    return rates


def _parse_head(head: bytes):
    lines = head.decode("latin-1").split("\r\n")
    method, path, version = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, path, version, headers


async def _discard(reader: asyncio.StreamReader, length: int) -> None:
    while length > 0:
        chunk = await reader.read(min(length, 1 << 20))
        if not chunk:
            raise ConnectionError("client closed the connection mid-body")
        length -= len(chunk)


async def _respond(writer: asyncio.StreamWriter, status: int, body, extra: dict | None = None,
                   close: bool = False) -> None:
    payload = b"" if body is None else json.dumps(body).encode("utf-8")
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Length: {len(payload)}",
             "Server: lojal-local-sendgrid"]
    if payload:
        lines.append("Content-Type: application/json")
    if close:
        lines.append("Connection: close")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
    await writer.drain()


def serve(options: LocalOptions, host: str, port: int, announce) -> None:
    """Run in the foreground (the CLI) until interrupted; `announce(server)` prints where it listens."""
    server = LocalSendGrid(options, host, port)

    async def main() -> None:
        await server.start_async()
        announce(server)
        await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
