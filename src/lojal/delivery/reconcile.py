"""Settle ledger rows whose outcome is not known (`sending` left by a stopped run, `unknown`)
before any run decides what to send. docs/delivery.md, "Unknown outcomes and reconciliation".

In order:
1. Any provider event for the message (`delivery_events`, written by the Event Webhook) proves
   the provider accepted it: -> sent, accepted_at = the earliest event's time.
2. Outbox rows: the outbox's files are its provider record: an `.eml` means written (-> sent),
   none means the run stopped before writing it (-> failed, sent again).
3. Rows still `sending` are from a run that stopped mid-request: -> unknown.
4. An unknown row is sent again (-> failed, then the normal retry path) only with evidence that
   the provider never accepted it: events arrived for messages attempted in the same window or
   later, and at least `unknown_grace_minutes` passed since its attempt, yet none for it.
5. An unknown row with no evidence either way after `unknown_settle_hours` is abandoned and
   assumed received: it counts for caps and "already received" and is never sent again.
Everything else stays unknown and `lojal delivery unknown` lists it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, and_, bindparam, func, select, update

from lojal import ledger
from lojal.store import schema
from lojal.store.schema import send_ledger

c = send_ledger.c
STOPPED = "the run stopped while this message was in flight; the provider may have accepted it"
NOT_ACCEPTED = ("no provider event arrived for it while events for messages sent with it or later did: "
                "not accepted; sent again")
NOT_WRITTEN = "the run stopped before the outbox wrote it; sent again"
ASSUMED = "outcome never known after {hours} h: assumed received, never sent again"


@dataclass(frozen=True)
class Policy:
    grace_minutes: float = 60
    settle_hours: float = 72
    max_attempts: int = 5


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def reconcile(engine: Engine, policy: Policy, outbox_root: Path | None = None,
              now: datetime | None = None) -> Counter:
    """Settle what can be settled; returns how many rows moved, by "from -> to"."""
    now = now or _now()
    moved: Counter = Counter()
    moved.update(_from_events(engine, now))
    if outbox_root is not None:
        moved.update(_from_outbox(engine, outbox_root, policy, now))
    moved.update(_stopped_to_unknown(engine, now))
    moved.update(_proven_lost(engine, policy, now))
    moved.update(_settle_old(engine, policy, now))
    return +moved


def _events_table():
    return schema.delivery_events


def _from_events(engine: Engine, now: datetime) -> Counter:
    events = _events_table()
    if events is None:
        return Counter()
    e = events.c
    query = (select(c.message_id, c.state, func.min(e.occurred_at), func.max(e.provider_message_id))
             .join(events, e.message_id == c.message_id)
             .where(c.state.in_(ledger.UNSETTLED))
             .group_by(c.message_id, c.state))
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        if rows:
            conn.execute(update(send_ledger).where(c.message_id == bindparam("mid"), ledger.state_in(ledger.UNSETTLED))
                         .values(state=ledger.SENT, accepted_at=bindparam("at"), accepted_on=c.attempt_run_date,
                                 provider_message_id=func.coalesce(c.provider_message_id, bindparam("pid")),
                                 error=None, settled_at=now),
                         [{"mid": m, "at": at or now, "pid": pid} for m, _, at, pid in rows])
    return Counter(f"{state} -> sent" for _, state, _, _ in rows)


def _from_outbox(engine: Engine, root: Path, policy: Policy, now: datetime) -> Counter:
    query = (select(c.message_id, c.campaign_id, c.attempt_run_date, c.state, c.attempts)
             .where(c.state.in_(ledger.UNSETTLED), c.backend.like("outbox%")))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    sent, lost = [], []
    for message_id, campaign_id, night, state, attempts in rows:
        eml = root / _iso(night) / campaign_id / f"{message_id}.eml"
        if eml.exists():
            at = datetime.fromtimestamp(eml.stat().st_mtime, timezone.utc).replace(tzinfo=None)
            sent.append({"mid": message_id, "at": at, "pid": eml.relative_to(root).as_posix()})
        else:
            lost.append((message_id, state, attempts))
    with engine.begin() as conn:
        if sent:
            conn.execute(update(send_ledger).where(c.message_id == bindparam("mid"), ledger.state_in(ledger.UNSETTLED))
                         .values(state=ledger.SENT, accepted_at=bindparam("at"), accepted_on=c.attempt_run_date,
                                 provider_message_id=bindparam("pid"), error=None, settled_at=now), sent)
    moved = Counter(f"{state} -> sent" for message_id, _, _, state, _ in rows
                    if message_id in {s["mid"] for s in sent})
    moved.update(_back_to_failed(engine, lost, NOT_WRITTEN, policy, now))
    return moved


def _iso(night) -> str:
    return night.isoformat() if isinstance(night, date) else str(night)[:10]


def _back_to_failed(engine: Engine, rows, why: str, policy: Policy, now: datetime) -> Counter:
    """Rows proven not accepted: failed (sent again) or, at the attempt cap, abandoned."""
    params = []
    for message_id, _state, attempts in rows:
        final = attempts >= policy.max_attempts
        params.append({"mid": message_id, "st": ledger.ABANDONED if final else ledger.FAILED,
                       "err": f"gave up after {attempts} attempts: {why}" if final else why})
    if params:
        with engine.begin() as conn:
            conn.execute(update(send_ledger).where(c.message_id == bindparam("mid"), ledger.state_in(ledger.UNSETTLED))
                         .values(state=bindparam("st"), error=bindparam("err"), settled_at=now), params)
    return Counter(f"{state} -> {p['st']}" for (_, state, _), p in zip(rows, params))


def _stopped_to_unknown(engine: Engine, now: datetime) -> Counter:
    """Called only while this run holds the store's run lock: no other run is sending, so every
    `sending` row belongs to a run that stopped."""
    with engine.begin() as conn:
        count = conn.execute(update(send_ledger).where(c.state == ledger.SENDING)
                             .values(state=ledger.UNKNOWN, error=STOPPED, settled_at=now)).rowcount
    return Counter({"sending -> unknown": count} if count else {})


def _proven_lost(engine: Engine, policy: Policy, now: datetime) -> Counter:
    events = _events_table()
    if events is None:
        return Counter()
    latest_evidence = (select(func.max(c.attempted_at)).select_from(send_ledger)
                       .where(c.message_id.in_(select(events.c.message_id).where(events.c.message_id.is_not(None)))))
    with engine.connect() as conn:
        horizon = conn.execute(latest_evidence).scalar()
        if horizon is None:
            return Counter()
        cutoff = min(horizon, now - timedelta(minutes=policy.grace_minutes))
        rows = conn.execute(select(c.message_id, c.state, c.attempts)
                            .where(and_(c.state == ledger.UNKNOWN, c.attempted_at <= cutoff))).all()
    return _back_to_failed(engine, [tuple(r) for r in rows], NOT_ACCEPTED, policy, now)


def _settle_old(engine: Engine, policy: Policy, now: datetime) -> Counter:
    cutoff = now - timedelta(hours=policy.settle_hours)
    with engine.begin() as conn:
        count = conn.execute(update(send_ledger).where(c.state == ledger.UNKNOWN, c.attempted_at <= cutoff)
                             .values(state=ledger.ABANDONED, accepted_on=c.attempt_run_date,
                                     error=ASSUMED.format(hours=f"{policy.settle_hours:g}"), settled_at=now)).rowcount
    return Counter({"unknown -> abandoned": count} if count else {})
