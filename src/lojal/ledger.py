"""The send ledger: one row per (campaign, customer, occasion).

A row is `planned` before rendering, `sent` once the backend accepted the message, `failed`
when it did not (retried by the next run). Because the key includes the occasion, a repeated
run for the same date sends nothing twice, and a run that stopped half-way resumes the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timezone

import pandas as pd
from sqlalchemy import Connection, Engine, and_, insert, select, update

from lojal.store.schema import send_ledger

PLANNED, SENT, FAILED = "planned", "sent", "failed"
_ID_CHUNK = 900  # below SQLite's bound-parameter limit


def message_id_for(campaign_id: str, customer_id: int, occasion_key: str) -> str:
    digest = hashlib.sha256(f"{campaign_id}\x1f{customer_id}\x1f{occasion_key}".encode()).hexdigest()
    return digest[:32]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def sent_rows(engine: Engine, campaign_ids: Iterable[str]) -> pd.DataFrame:
    """Rows already sent for these campaigns: campaign_id, customer_id, occasion_key, run_date."""
    query = (select(send_ledger.c.campaign_id, send_ledger.c.customer_id, send_ledger.c.occasion_key,
                    send_ledger.c.run_date)
             .where(send_ledger.c.state == SENT, send_ledger.c.campaign_id.in_(list(campaign_ids))))
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["run_date"] = pd.to_datetime(frame["run_date"]).dt.date
    return frame


def plan(engine: Engine, campaign_id: str, run_date: date, recipients: pd.DataFrame) -> pd.DataFrame:
    """Record `recipients` (customer_id, occasion_key) as planned where no row exists yet and
    return every recipient's ledger row: customer_id, occasion_key, message_id, state."""
    frame = recipients[["customer_id", "occasion_key"]].copy()
    frame["message_id"] = [message_id_for(campaign_id, int(c), o)
                           for c, o in zip(frame["customer_id"], frame["occasion_key"])]
    now = _utcnow()
    with engine.begin() as conn:
        existing = _existing(conn, campaign_id, frame["message_id"].tolist())
        new = frame[~frame["message_id"].isin(existing.keys())]
        if len(new):
            conn.execute(insert(send_ledger), [
                {"campaign_id": campaign_id, "customer_id": int(c), "occasion_key": o, "run_date": run_date,
                 "message_id": m, "state": PLANNED, "planned_at": now, "attempts": 0}
                for c, o, m in zip(new["customer_id"], new["occasion_key"], new["message_id"])])
    frame["state"] = [existing.get(m, PLANNED) for m in frame["message_id"]]
    return frame.reset_index(drop=True)


def _existing(conn: Connection, campaign_id: str, message_ids: Sequence[str]) -> dict[str, str]:
    states: dict[str, str] = {}
    for start in range(0, len(message_ids), _ID_CHUNK):
        chunk = message_ids[start:start + _ID_CHUNK]
        rows = conn.execute(select(send_ledger.c.message_id, send_ledger.c.state)
                            .where(and_(send_ledger.c.campaign_id == campaign_id,
                                        send_ledger.c.message_id.in_(chunk))))
        states.update({m: s for m, s in rows})
    return states


def mark_sent(engine: Engine, message_ids: Sequence[str]) -> None:
    if not message_ids:
        return
    now = _utcnow()
    with engine.begin() as conn:
        for start in range(0, len(message_ids), _ID_CHUNK):
            conn.execute(update(send_ledger)
                         .where(send_ledger.c.message_id.in_(message_ids[start:start + _ID_CHUNK]))
                         .values(state=SENT, sent_at=now, error=None, attempts=send_ledger.c.attempts + 1))


def mark_failed(engine: Engine, failures: dict[str, str]) -> None:
    if not failures:
        return
    with engine.begin() as conn:
        for message_id, error in failures.items():
            conn.execute(update(send_ledger).where(send_ledger.c.message_id == message_id)
                         .values(state=FAILED, error=error[:2000], attempts=send_ledger.c.attempts + 1))

