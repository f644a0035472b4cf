"""The Event Webhook receiver: an ASGI app (served by uvicorn) at POST /sendgrid/events.

In order, for every post: refuse a body over the size limit (413) before reading it all; verify
the signature over timestamp + raw body (401 missing, 403 forged/tampered/stale) before
parsing anything; parse (400 when not a JSON array); write every event to `delivery_events` in
one transaction (duplicates by sg_event_id skipped); only then answer 200. When the database
cannot be written it answers 503, so SendGrid posts the batch again later: nothing is lost.
Verification is off only when built with `verify=False` (the CLI's --insecure-no-verify).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import anyio
from sqlalchemy import Engine

from lojal.errors import WebhookConfigError, WebhookError
from lojal.sendgrid.events import parse_batch, store_events
from lojal.sendgrid.webhook import (DEFAULT_MAX_AGE_SECONDS, DEFAULT_MAX_BODY_BYTES, SIGNATURE_HEADER,
                                    TIMESTAMP_HEADER, Verifier, load_public_key)

EVENTS_PATH = "/sendgrid/events"
PUBLIC_KEY_ENV = "LOJAL_SENDGRID_WEBHOOK_PUBLIC_KEY"
log = logging.getLogger("lojal.webhook")


class WebhookApp:
    def __init__(self, engine: Engine, verifier: Verifier | None, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 store: Callable = store_events, report: Callable[[str], None] | None = None,
                 unsubscribe=None, apply_suppressions: bool = True):
        self.engine = engine
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self.store = store
        self.report = report  # one line per stored batch (the CLI prints it)
        self.counts = {"stored": 0, "posts": 0, "refused": 0, "failed": 0}
        self.unsubscribe = unsubscribe  # lojal.tracking.unsubscribe.UnsubscribeEndpoint: /unsubscribe/{token}
        self.apply_suppressions = apply_suppressions  # bounces/complaints/unsubscribes -> suppressions at once

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz" and scope["method"] == "GET":
            await _answer(send, 200, {"ok": True, **self.counts})
            return
        if self.unsubscribe is not None and scope["path"].startswith("/unsubscribe/"):
            await self.unsubscribe.handle(scope, receive, send)
            return
        if scope["path"] != EVENTS_PATH:
            await _answer(send, 404, {"error": f"no route {scope['path']}; SendGrid posts to {EVENTS_PATH}"})
            return
        if scope["method"] != "POST":
            await _answer(send, 405, {"error": "POST only"})
            return
        status, answer = await self._post(scope, receive)
        await _answer(send, status, answer)

    async def _post(self, scope, receive) -> tuple[int, dict]:
        self.counts["posts"] += 1
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await self._read_body(headers, receive)
            if self.verifier is not None:
                self.verifier.verify(body, headers.get(SIGNATURE_HEADER.lower()), headers.get(TIMESTAMP_HEADER.lower()))
            events = parse_batch(body)
        except WebhookError as exc:
            self.counts["refused"] += 1
            log.warning("refused an Event Webhook post (%s): %s", exc.status, exc)
            return exc.status, {"error": str(exc)}
        try:
            stored = await anyio.to_thread.run_sync(self.store, self.engine, events)
        except Exception as exc:  # the database is down or refuses: SendGrid must retry
            self.counts["failed"] += 1
            log.error("could not store %d events (%s); answered 503 so SendGrid retries", len(events),
                      type(exc).__name__)
            return 503, {"error": "events could not be stored; retry later"}
        self.counts["stored"] += stored
        if self.apply_suppressions and stored:
            await anyio.to_thread.run_sync(_apply_suppressions, self.engine)
        if self.report:
            self.report(batch_summary(events, stored))
        return 200, {"received": len(events), "stored": stored}

    async def _read_body(self, headers: dict, receive) -> bytes:
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise WebhookError(f"body of {declared} bytes is over the {self.max_body_bytes} byte limit", status=413)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise WebhookError("the client went away mid-body", status=400)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise WebhookError(f"body over the {self.max_body_bytes} byte limit", status=413)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


def _apply_suppressions(engine: Engine) -> None:
    """The same night: new bounces, complaints and unsubscribes become suppressions (lojal.suppressions).
    A failure here loses nothing: the events are stored and the next pass (or the nightly flow) applies them."""
    from lojal.suppressions import apply_events

    try:
        apply_events(engine)
    except Exception as exc:
        log.error("could not apply events to the suppression list yet (%s); the next pass will", type(exc).__name__)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def batch_summary(events, stored: int) -> str:
    """`stored 498 of 500 events: processed 200, delivered 190, opened 80 (12 machine), ...`"""
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event.event] = kinds.get(event.event, 0) + 1
    machine = sum(e.machine_open for e in events)
    parts = [f"{kind} {n}" + (f" ({machine} machine)" if kind == "opened" and machine else "")
             for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])]
    return f"stored {stored} of {len(events)} events: {', '.join(parts)}"


def verifier_for(public_key: str | None, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> Verifier:
    if not public_key:
        raise WebhookConfigError(
            f"no Event Webhook verification key: set {PUBLIC_KEY_ENV} or sender.yaml "
            "delivery.sendgrid.webhook_public_key (SendGrid: Settings > Mail Settings > Event Webhook > "
            "Signature verification), or pass --insecure-no-verify for development only")
    return Verifier(load_public_key(public_key), max_age_seconds)


def app_for_project(project: Path | None, verify: bool = True,
                    report: Callable[[str], None] | None = None) -> WebhookApp:
    """The receiver for a project: its store (LOJAL_DATABASE_URL or the default) and its settings."""
    from lojal.config import load_config
    from lojal.paths import Paths
    from lojal.store import connect
    from lojal.store.db import init_schema

    paths = Paths.resolve(project)
    settings = load_config(paths).sender.delivery.sendgrid
    verifier = None
    if verify:
        verifier = verifier_for(os.environ.get(PUBLIC_KEY_ENV) or settings.webhook_public_key,
                                settings.webhook_max_age_seconds)
    engine = connect(paths.database_url)
    init_schema(engine)
    return WebhookApp(engine, verifier, max_body_bytes=settings.webhook_max_body_bytes, report=report,
                      unsubscribe=_unsubscribe_endpoint(paths, engine, report))


def _unsubscribe_endpoint(paths, engine: Engine, report):
    """`/unsubscribe/{token}`, verified with the shop's one secret (lojal.secrets: LOJAL_SECRET, the
    Prefect Secret block tracking.secret_block, else the store's generated secret.key)."""
    from lojal.config import load_config
    from lojal.errors import TrackingConfigError
    from lojal.secrets import load_secrets
    from lojal.tracking.unsubscribe import UnsubscribeEndpoint

    config = load_config(paths)
    try:
        secrets = load_secrets(paths, config)
    except TrackingConfigError as exc:
        log.warning("no /unsubscribe endpoint: %s", exc)
        return None
    log.info("unsubscribe tokens verified with the shop's secret from %s", secrets.source)
    return UnsubscribeEndpoint(engine, secrets, config.brand.name, report)
