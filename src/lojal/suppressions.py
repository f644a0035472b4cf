"""The suppression list's sources and operations: SendGrid events, a CSV import, the unsubscribe
link, and the operator's list/remove. Every write goes through `lojal.store.suppressions.suppress`
(one normalization: `lojal.addresses.suppression_key`); the audience gate (lojal.audience) keeps
every suppressed mailbox out of every campaign.

Events become suppressions as follows (reason stored):

- `bounced` with SendGrid type `bounce` (a hard bounce; `blocked` is temporary): `bounce`
- `complained` (spam report): `spam_report`
- `unsubscribed` (global unsubscribe, or Lojal's own link): `unsubscribe`
- `group_unsubscribed`: `group_unsubscribe` with the group; a later `group_resubscribed` for the
  same mailbox and group lifts it (and nothing else).

`apply_events` reads `delivery_events` past a stored cursor, in id order, so running it again does
nothing twice and a suppression an operator removed is not brought back by old events.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from lojal.addresses import parse as parse_address
from lojal.addresses import suppression_key
from lojal.errors import AddressError, DataImportError, Problem
from lojal.store import schema
from lojal.store.parse import parse_datetime
from lojal.store.suppressions import suppress

BOUNCE, SPAM_REPORT, UNSUBSCRIBE, GROUP_UNSUBSCRIBE, MANUAL = (
    "bounce", "spam_report", "unsubscribe", "group_unsubscribe", "manual")
REASONS = (BOUNCE, SPAM_REPORT, UNSUBSCRIBE, GROUP_UNSUBSCRIBE, MANUAL, "block", "invalid_email")
EVENTS_CURSOR = "suppressions-from-events"
LINK_SOURCE = "unsubscribe-link"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Applied:
    suppressed: int = 0  # new suppressions
    lifted: int = 0  # group unsubscribes lifted by a resubscribe
    events: int = 0  # events read
    position: int = 0  # the cursor after this pass
    reasons: dict[str, int] = field(default_factory=dict)  # new suppressions by reason

    def reason_text(self) -> str:
        """`bounce 3, spam_report 1` (empty when nothing new was suppressed)."""
        return ", ".join(f"{reason} {n}" for reason, n in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])))

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def event_reason(event: str, raw_event: str | None, bounce_type: str | None) -> str | None:
    """The suppression an event calls for, or None."""
    if event == "bounced":
        return BOUNCE if (bounce_type or raw_event or "bounce") == "bounce" else None
    return {"complained": SPAM_REPORT, "unsubscribed": UNSUBSCRIBE, "group_unsubscribed": GROUP_UNSUBSCRIBE}.get(event)


def add(engine: Engine, email: str, reason: str, source: str, at: datetime | None,
        group: int | None = None, event_id: str | None = None) -> bool:
    """Suppress through the one normalization; True when this call added the row."""
    key = suppression_key(email)
    with engine.connect() as conn:
        present = conn.execute(select(schema.suppressions.c.email).where(schema.suppressions.c.email == key)).first()
    if present is not None:
        return False
    try:
        suppress(engine, email, reason, source, at)
    except IntegrityError:  # a concurrent writer (another webhook batch, the link) suppressed it first
        return False
    if group is not None or event_id is not None:
        with engine.begin() as conn:
            table = schema.suppressions  # only the row this call wrote, never a concurrent writer's
            conn.execute(update(table).where(table.c.email == key, table.c.reason == reason, table.c.source == source,
                                             table.c.event_id.is_(None)).values(asm_group_id=group, event_id=event_id))
    return True


def _lift_group(engine: Engine, email: str, group: int | None, at: datetime | None) -> bool:
    table = schema.suppressions
    where = [table.c.email == suppression_key(email), table.c.reason == GROUP_UNSUBSCRIBE]
    if group is not None:
        where.append(table.c.asm_group_id == group)
    if at is not None:
        where.append(table.c.created_at <= at)
    with engine.begin() as conn:
        return conn.execute(delete(table).where(*where)).rowcount > 0


def _cursor(conn, name: str) -> int:
    row = conn.execute(select(schema.tracking_cursors.c.position).where(schema.tracking_cursors.c.name == name)).first()
    return int(row[0]) if row else 0


def _move_cursor(engine: Engine, name: str, position: int) -> None:
    table = schema.tracking_cursors
    with engine.begin() as conn:
        if conn.execute(select(table.c.name).where(table.c.name == name)).first() is None:
            conn.execute(table.insert().values(name=name, position=position, updated_at=_now()))
        else:  # never backwards: a slower concurrent pass must not undo a faster one's progress
            conn.execute(update(table).where(table.c.name == name, table.c.position < position)
                         .values(position=position, updated_at=_now()))


def apply_events(engine: Engine, batch: int = 5000) -> Applied:
    """Turn new `delivery_events` into suppressions (and lift group unsubscribes on resubscribe)."""
    ev = schema.delivery_events
    kinds = ("bounced", "complained", "unsubscribed", "group_unsubscribed", "group_resubscribed")
    applied = Applied()
    with engine.connect() as conn:
        applied.position = start = _cursor(conn, EVENTS_CURSOR)
        last = conn.execute(select(func.max(ev.c.id))).scalar() or 0
    while applied.position < last:
        with engine.connect() as conn:
            rows = conn.execute(
                select(ev.c.id, ev.c.sg_event_id, ev.c.event, ev.c.raw_event, ev.c.email, ev.c.occurred_at,
                       ev.c.received_at, ev.c.bounce_type, ev.c.asm_group_id)
                .where(ev.c.id > applied.position, ev.c.id <= last, ev.c.event.in_(kinds))
                .order_by(ev.c.id).limit(batch)).all()
        for row in rows:
            _apply_one(engine, row, applied)
        applied.position = rows[-1].id if len(rows) == batch else last
    if applied.position != start:
        _move_cursor(engine, EVENTS_CURSOR, applied.position)
    return applied


def _apply_one(engine: Engine, row, applied: Applied) -> None:
    applied.events += 1
    if not row.email:
        return
    at = row.occurred_at or row.received_at
    if row.event == "group_resubscribed":
        applied.lifted += _lift_group(engine, row.email, row.asm_group_id, at)
        return
    reason = event_reason(row.event, row.raw_event, row.bounce_type)
    if reason is not None and add(engine, row.email, reason, "sendgrid-event", at,
                                  row.asm_group_id if reason == GROUP_UNSUBSCRIBE else None, row.sg_event_id):
        applied.suppressed += 1
        applied.reasons[reason] = applied.reasons.get(reason, 0) + 1


# --- the unsubscribe link ------------------------------------------------------------------------

def unsubscribe_by_link(engine: Engine, email: str, message_id: str) -> bool:
    """The recipient of `message_id` clicked unsubscribe (verified token): suppress that mailbox."""
    return add(engine, email, UNSUBSCRIBE, LINK_SOURCE, _now(), event_id=f"link:{message_id}"[:100])


def undo_link_unsubscribe(engine: Engine, email: str, message_id: str) -> bool:
    """Undo exactly what `unsubscribe_by_link` did for this message; a bounce, complaint or other
    source's suppression of the same mailbox is never lifted this way."""
    table = schema.suppressions
    with engine.begin() as conn:
        return conn.execute(delete(table).where(
            table.c.email == suppression_key(email), table.c.reason == UNSUBSCRIBE,
            table.c.source == LINK_SOURCE, table.c.event_id == f"link:{message_id}"[:100])).rowcount > 0


def list_suppressions_for(engine: Engine, email: str) -> list[dict]:
    table = schema.suppressions
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).where(table.c.email == suppression_key(email)))]


def is_suppressed(engine: Engine, email: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(schema.suppressions.c.email)
                            .where(schema.suppressions.c.email == suppression_key(email))).first() is not None


# --- operators -----------------------------------------------------------------------------------

def list_suppressions(engine: Engine, reason: str | None = None, limit: int | None = None) -> list[dict]:
    table = schema.suppressions
    query = select(table).order_by(table.c.created_at.desc(), table.c.email)
    if reason:
        query = query.where(table.c.reason == reason)
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def remove(engine: Engine, email: str) -> bool:
    """Lift a suppression (operator's decision, e.g. a mistaken import): True when one was removed."""
    with engine.begin() as conn:
        return conn.execute(delete(schema.suppressions)
                            .where(schema.suppressions.c.email == suppression_key(email))).rowcount > 0


# --- CSV import ----------------------------------------------------------------------------------

@dataclass
class _Row:
    line: int
    email: str
    reason: str
    created_at: datetime | None
    source: str


@dataclass
class ImportResult:
    rows: int = 0
    added: int = 0
    already: int = 0
    problems: list[Problem] = field(default_factory=list)


def read_csv(path: Path) -> list[_Row]:
    """Rows of a suppression CSV (columns `email`, optional `reason`, `created_at`, `source`);
    DataImportError listing every bad row (file:line:column) when any is bad."""
    problems: list[Problem] = []
    rows: list[_Row] = []
    name = str(path)
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataImportError([Problem(name, None, None, f"cannot read the file: {exc.strerror}")]) from None
    with handle:
        try:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            if "email" not in header:
                raise DataImportError([Problem(name, 1, None, "no 'email' column; the header must name email "
                                               "and optionally reason, created_at, source")])
            unknown = [h for h in header if h not in ("email", "reason", "created_at", "source")]
            if unknown:
                problems.append(Problem(name, 1, None, f"unknown column(s) {', '.join(unknown)}; "
                                        "allowed: email, reason, created_at, source"))
            reader.fieldnames = header
            for record in reader:
                row = _read_row(name, reader.line_num, header, record, problems)
                if row is not None:
                    rows.append(row)
        except UnicodeDecodeError:
            problems.append(Problem(name, None, None, "not UTF-8 text; save the file as UTF-8 CSV"))
        except csv.Error as exc:
            problems.append(Problem(name, reader.line_num, None, f"not a readable CSV: {exc}"))
    if problems:
        raise DataImportError(problems, f"{len(problems)} problem(s) in {name}; nothing was imported:\n"
                              + "\n".join(str(p) for p in problems))
    return rows


def _read_row(name: str, line: int, header: list[str], record: dict, problems: list[Problem]) -> _Row | None:
    if None in record:
        problems.append(Problem(name, line, None, f"more cells than the {len(header)} columns of the header"))
        return None
    bad = len(problems)
    email = (record.get("email") or "").strip()
    try:
        parse_address(email)
    except AddressError as exc:
        problems.append(Problem(name, line, header.index("email") + 1, f"email {email!r} is not an e-mail address: {exc}"))
    reason = (record.get("reason") or "").strip().lower() or MANUAL
    if reason not in REASONS:
        problems.append(Problem(name, line, header.index("reason") + 1,
                                f"reason {reason!r} is not one of {', '.join(REASONS)}"))
    created_at = None
    if (record.get("created_at") or "").strip():
        created_at, message = parse_datetime(record["created_at"])
        if message:
            problems.append(Problem(name, line, header.index("created_at") + 1, f"created_at: {message}"))
    source = (record.get("source") or "").strip()[:64] or "import"
    return _Row(line, email, reason, created_at, source) if len(problems) == bad else None


def import_csv(engine: Engine, path: Path) -> ImportResult:
    """All rows or none: the whole file is checked first; then every row is stored in one transaction."""
    rows = read_csv(path)
    result = ImportResult(rows=len(rows))
    table = schema.suppressions
    now = _now()
    with engine.begin() as conn:
        present = {r[0] for r in conn.execute(select(table.c.email))}
        fresh: dict[str, dict] = {}
        for row in rows:
            key = suppression_key(row.email)
            if key in present or key in fresh:
                result.already += 1
                continue
            fresh[key] = {"email": key, "reason": row.reason, "source": row.source,
                          "created_at": row.created_at or now, "asm_group_id": None, "event_id": None}
        if fresh:
            conn.execute(table.insert(), list(fresh.values()))
    result.added = len(fresh)
    return result
