"""SendGrid Event Webhook events, normalized into one type, and their durable store.

SendGrid posts a JSON array of events; each carries `event`, `email`, `timestamp`,
`sg_event_id`, `sg_message_id` (X-Message-Id + a suffix) and, at the top level, the message's
`custom_args` (ours: `lojal_message_id`). Every event becomes a `DeliveryEvent` with one of

    processed delivered deferred bounced dropped opened clicked complained unsubscribed
    group_unsubscribed group_resubscribed unknown

keeping its raw JSON. Opens made by a machine (Apple Mail Privacy Protection and the like;
SendGrid flags them `sg_machine_open: true`) are marked `machine_open`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone

from sqlalchemy import Engine
from sqlalchemy.dialects import sqlite

from lojal.errors import WebhookPayloadError

KINDS = {"processed": "processed", "delivered": "delivered", "deferred": "deferred", "bounce": "bounced",
         "blocked": "bounced", "dropped": "dropped", "open": "opened", "click": "clicked",
         "spamreport": "complained", "unsubscribe": "unsubscribed", "group_unsubscribe": "group_unsubscribed",
         "group_resubscribe": "group_resubscribed"}
NORMALIZED = ("processed", "delivered", "deferred", "bounced", "dropped", "opened", "clicked", "complained",
              "unsubscribed", "group_unsubscribed", "group_resubscribed", "unknown")
MESSAGE_ID_ARG = "lojal_message_id"


@dataclass(frozen=True)
class DeliveryEvent:
    sg_event_id: str
    event: str                      # one of NORMALIZED
    raw_event: str | None
    message_id: str | None          # Lojal's message id (custom_args lojal_message_id)
    provider_message_id: str | None  # SendGrid's X-Message-Id
    email: str | None
    occurred_at: datetime | None    # naive UTC
    received_at: datetime           # naive UTC
    machine_open: bool
    bounce_type: str | None
    reason: str | None
    url: str | None
    asm_group_id: int | None
    payload: str                    # the raw event as JSON


def parse_batch(body: bytes, received_at: datetime | None = None) -> list[DeliveryEvent]:
    """A verified webhook body -> events. Only a body that is not a JSON array is refused; an odd
    event inside it is kept as `unknown` with its payload, never dropped."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookPayloadError("the body is not JSON", status=400) from None
    if not isinstance(items, list):
        raise WebhookPayloadError("the body is not a JSON array of events", status=400)
    now = received_at or datetime.now(timezone.utc).replace(tzinfo=None)
    return [normalize(item, now) for item in items]


def normalize(item: object, received_at: datetime) -> DeliveryEvent:
    payload = json.dumps(item, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if not isinstance(item, dict):
        return DeliveryEvent(_synthetic_id(payload), "unknown", None, None, None, None, None, received_at,
                             False, None, None, None, None, payload)
    raw = item.get("event") if isinstance(item.get("event"), str) else None
    kind = KINDS.get(raw or "", "unknown")
    event_id = item.get("sg_event_id")
    event_id = event_id if isinstance(event_id, str) and 0 < len(event_id) <= 100 else _synthetic_id(payload)
    return DeliveryEvent(
        sg_event_id=event_id, event=kind, raw_event=(raw or None) and raw[:32],
        message_id=_text(item.get(MESSAGE_ID_ARG), 64), provider_message_id=_provider_id(item.get("sg_message_id")),
        email=_text(item.get("email"), 254), occurred_at=_time(item.get("timestamp")), received_at=received_at,
        machine_open=kind == "opened" and item.get("sg_machine_open") in (True, "true", 1),
        bounce_type=_text(item.get("type") if kind == "bounced" else None, 32),
        reason=_text(item.get("reason") or item.get("response"), 10_000), url=_text(item.get("url"), 10_000),
        asm_group_id=item.get("asm_group_id") if isinstance(item.get("asm_group_id"), int) else None,
        payload=payload)


def _synthetic_id(payload: str) -> str:
    """No usable sg_event_id: the event's own content names it, so a repeat still de-duplicates."""
    return "sha256:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _provider_id(value: object) -> str | None:
    return value.split(".", 1)[0][:128] or None if isinstance(value, str) else None


def _text(value: object, limit: int) -> str | None:
    return str(value)[:limit] if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "" else None


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), timezone.utc).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def store_events(engine: Engine, events: Sequence[DeliveryEvent]) -> int:
    """Insert events in one transaction, skipping sg_event_ids already stored (by this batch or an
    earlier post); returns how many rows were new. Raises when the database cannot be written.
    PostgreSQL: COPY into a session temp table, then one INSERT ... ON CONFLICT DO NOTHING (about
    five times the rate of a multi-row INSERT); SQLite: INSERT ... ON CONFLICT DO NOTHING."""
    rows = list({e.sg_event_id: asdict(e) for e in events}.values())
    if not rows:
        return 0
    if engine.dialect.name == "postgresql":
        return _store_postgres(engine, rows)
    from lojal.store.schema import delivery_events

    statement = (sqlite.insert(delivery_events).on_conflict_do_nothing(index_elements=["sg_event_id"])
                 .returning(delivery_events.c.id))
    with engine.begin() as conn:
        return sum(len(conn.execute(statement, chunk).all()) for chunk in _chunks(rows, 1000))


_COLUMNS = tuple(f.name for f in fields(DeliveryEvent))


def _store_postgres(engine: Engine, rows: list[dict]) -> int:
    columns = ", ".join(_COLUMNS)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS incoming_delivery_events "
                             "(LIKE delivery_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        cursor = conn.connection.cursor()
        with cursor.copy(f"COPY incoming_delivery_events ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in _COLUMNS])
        result = conn.exec_driver_sql(
            f"INSERT INTO delivery_events ({columns}) SELECT {columns} FROM incoming_delivery_events "
            "ON CONFLICT (sg_event_id) DO NOTHING")
        return result.rowcount


def _chunks(rows: list, size: int) -> Iterable[list]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
