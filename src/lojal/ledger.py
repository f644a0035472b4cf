"""The send ledger: one row per (campaign, customer, occasion), the truth about every message.

States (docs/delivery.md, "A message's life"):

    planned    decided for a night; not handed to a provider yet
    sending    committed just before the request leaves (attempt number and time); a crash leaves
               at most one window of these (at most the backend's concurrency)
    sent       the provider accepted it: provider message id, accepted_at, accepted_on
    rejected   refused for good (4xx): never retried
    failed     not accepted, may be retried: by this run's retry passes and later runs, up to
               `max_attempts`, then abandoned
    unknown    the request may have been accepted (timeout, connection dropped after the body was
               sent): never blindly resent; settled by `reconcile` from the provider's events
    abandoned  given up (attempt cap reached, or an unknown outcome never settled): never sent again
    expired    planned on an earlier night and not sent within the campaign's `send_within_days`
    held_out   in the campaign's holdout group (lojal.decisions): never sent; counts as received for
               its occasion, so the customer stays held out of that occasion

Each row also records what the message is made of (`variant`, `send_at`, `offer_code`, `made_from`:
file hashes and the recommended items), so it can be rendered again from the row alone.

Caps and "already received" count what was (or may have been) accepted, by `accepted_on`: the
night of the run that got it accepted, not the night it was planned for.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
from sqlalchemy import (Connection, Date, DateTime, Engine, String, and_, bindparam, case, func, or_,
                        select, update)

from lojal.delivery.base import DeliveryResult
from lojal.store.read import KEY_CHUNK, by_key, key_filters, read_frame
from lojal.store.schema import send_ledger
from lojal.store.write import bulk_insert

PLANNED, SENDING, SENT, REJECTED, FAILED = "planned", "sending", "sent", "rejected", "failed"
UNKNOWN, ABANDONED, EXPIRED, HELD_OUT = "unknown", "abandoned", "expired", "held_out"
STATES = (PLANNED, SENDING, SENT, REJECTED, FAILED, UNKNOWN, ABANDONED, EXPIRED, HELD_OUT)
SENDABLE = (PLANNED, FAILED)  # may be handed to a backend
UNSETTLED = (SENDING, UNKNOWN)  # may have been accepted: counted as received, never blindly resent
_ID_CHUNK = KEY_CHUNK  # below SQLite's bound-parameter limit
_ERROR_CHARS = 2000

c = send_ledger.c


def message_id_for(campaign_id: str, customer_id: int, occasion_key: str) -> str:
    digest = hashlib.sha256(f"{campaign_id}\x1f{customer_id}\x1f{occasion_key}".encode()).hexdigest()
    return digest[:32]


def message_ids_for(campaign_id: str, rows: pd.DataFrame) -> list[str]:
    """`message_id_for` of each (customer_id, occasion_key) row."""
    return [message_id_for(campaign_id, int(cid), o) for cid, o in zip(rows["customer_id"], rows["occasion_key"])]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def state_in(states: Sequence[str]):
    """`state IN (...)` spelled with OR, usable in executemany statements (IN expands per call)."""
    return or_(*(c.state == s for s in states))


def _chunks(items: Sequence, size: int = _ID_CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def received_rows(engine: Engine, campaign_ids: Iterable[str]) -> pd.DataFrame:
    """What customers received (or may have): campaign_id, customer_id, occasion_key, night.
    `night` is the night it counts for: accepted_on for accepted rows, the attempt's night for
    rows whose outcome is not known yet."""
    night = func.coalesce(c.accepted_on, c.attempt_run_date).label("night")
    counted = or_(c.state.in_((SENT, *UNSETTLED)), and_(c.state == ABANDONED, c.accepted_on.is_not(None)))
    query = (select(c.campaign_id, c.customer_id, c.occasion_key, night)
             .where(counted, c.campaign_id.in_(list(campaign_ids))))
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["night"] = pd.to_datetime(frame["night"]).dt.date
    return frame


RECORD_COLUMNS = ("variant", "send_at", "offer_code", "made_from")


def history_rows(engine: Engine) -> pd.DataFrame:
    """The ledger as the planner reads it (`lojal.decisions.decide`): every row a customer received,
    may have received or was held out of, and every row SendGrid accepted. campaign_id, customer_id,
    occasion_key, state, accepted_at, run_date, and `night`: the night it counts for (accepted_on,
    else the night of its latest attempt)."""
    night = func.coalesce(c.accepted_on, c.attempt_run_date).label("night")
    counted = or_(c.state.in_((SENT, *UNSETTLED, HELD_OUT)), c.accepted_at.is_not(None))
    query = select(c.campaign_id, c.customer_id, c.occasion_key, c.state, c.accepted_at, c.run_date, night).where(counted)
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["accepted_at"] = pd.to_datetime(frame["accepted_at"])
    for column in ("run_date", "night"):
        frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame


def plan(engine: Engine, campaign_id: str, run_date: date, rows: pd.DataFrame) -> pd.DataFrame:
    """Record `rows` (customer_id, occasion_key, state planned or held_out, and what the message is
    made of: variant, send_at, offer_code, made_from) where no row exists yet for the occasion, and
    return every row as the ledger holds it: customer_id, occasion_key, message_id, state, variant,
    send_at, offer_code, made_from (an existing row keeps its state and its record)."""
    frame = rows.copy()
    for column in RECORD_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    if "message_id" not in frame.columns:
        frame["message_id"] = message_ids_for(campaign_id, frame)
    now = _utcnow()
    with engine.begin() as conn:
        existing = _existing(conn, campaign_id, frame["message_id"].tolist())
        known = frame["message_id"].isin(existing.keys()).to_numpy()
        new = _new_rows(campaign_id, run_date, now, frame[~known])
        if len(new):  # COPY on PostgreSQL (a night plans hundreds of thousands of rows), executemany on SQLite
            bulk_insert(conn, send_ledger, new)
        # existing rows as the ledger holds them; new ones as just written (not read back)
        stored = _stored(conn, frame.loc[known, "message_id"].tolist()) if known.any() else None
    return _stored_frame([f for f in (stored, new) if f is not None and len(f)]).reset_index(drop=True)


def _new_rows(campaign_id: str, run_date: date, now: datetime, frame: pd.DataFrame) -> pd.DataFrame:
    """Ledger rows for these planned messages, a column at a time."""
    state = frame.get("state", pd.Series(PLANNED, index=frame.index, dtype=object))
    return pd.DataFrame({
        "campaign_id": campaign_id, "customer_id": frame["customer_id"].astype("int64").to_numpy(),
        "occasion_key": frame["occasion_key"].to_numpy(), "run_date": run_date,
        "message_id": frame["message_id"].to_numpy(),
        "state": state.where(state.notna() & (state != ""), PLANNED).to_numpy(dtype=object),
        "planned_at": now, "attempts": 0, "variant": _nones(frame["variant"]),
        "send_at": pd.to_datetime(frame["send_at"]).to_numpy(), "offer_code": _nones(frame["offer_code"]),
        "made_from": _nones(frame["made_from"])}, index=range(len(frame)))


def _nones(series: pd.Series) -> np.ndarray:
    values = series.to_numpy(dtype=object)
    return np.where(pd.isna(series).to_numpy(), None, values)


def refresh_statistics(engine: Engine) -> None:
    """After planning wrote a night's rows: PostgreSQL's planner statistics of the ledger brought up
    to date (ANALYZE). Without it, right after a bulk insert the planner thinks few rows are
    `planned` and claims each window through the state index instead of the message-id key, which
    slowed every claim of a large night (docs/benchmarks.md, bench/night.py)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {send_ledger.name}")


def _id_filters(conn: Connection, message_ids: Sequence[str]):
    """WHERE clauses covering these message ids (store.read.key_filters)."""
    return key_filters(conn, c.message_id, message_ids)


def existing_states(engine: Engine, campaign_id: str, message_ids: Sequence[str]) -> dict[str, str]:
    """{message_id: state} of the messages that already have a row."""
    with engine.connect() as conn:
        return _existing(conn, campaign_id, list(message_ids))


def _existing(conn: Connection, campaign_id: str, message_ids: Sequence[str]) -> dict[str, str]:
    states: dict[str, str] = {}
    for ids in _id_filters(conn, message_ids):
        rows = conn.execute(select(c.message_id, c.state).where(and_(c.campaign_id == campaign_id, ids)))
        states.update({m: s for m, s in rows})
    return states


_STORED = (c.message_id, c.customer_id, c.occasion_key, c.state, c.variant, c.send_at, c.offer_code, c.made_from)


def _stored(conn: Connection, message_ids: Sequence[str]) -> pd.DataFrame:
    return _stored_frame([read_frame(conn, select(*_STORED).where(ids)) for ids in _id_filters(conn, message_ids)])


def _stored_frame(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows as `plan` returns them: the columns of `_STORED`, send_at a datetime, by customer."""
    columns = [col.name for col in _STORED]
    frame = pd.concat([f[columns] for f in frames], ignore_index=True) if frames else pd.DataFrame(columns=columns)
    frame["send_at"] = pd.to_datetime(frame["send_at"])
    return frame.sort_values("customer_id", kind="stable")[columns]


def sendable_rows(engine: Engine, message_ids: Sequence[str]) -> pd.DataFrame:
    """These messages' rows still sendable (planned or failed), with what each is made of (the columns
    of `_STORED`), in no particular order: what a batch renders and sends."""
    columns = [col.name for col in _STORED]
    with engine.connect() as conn:
        by_key(conn)  # a batch is a sliver of the ledger: read it by the unique index
        rows = [row for ids in _id_filters(conn, list(message_ids))
                for row in conn.execute(select(*_STORED).where(ids, state_in(SENDABLE)))]
    return pd.DataFrame(rows, columns=columns)


def record(engine: Engine, message_id: str) -> dict:
    """One message's row (for `lojal ledger show`), `made_from` parsed; PlanError when there is none."""
    from lojal.errors import PlanError

    with engine.connect() as conn:
        row = conn.execute(select(send_ledger).where(c.message_id == message_id)).mappings().first()
    if row is None:
        raise PlanError(f"no message {message_id!r} in the send ledger; `lojal runs show` lists a night's messages")
    result = dict(row)
    result["made_from"] = json.loads(result["made_from"]) if result.get("made_from") else None
    return result


def carried_rows(engine: Engine, campaign_ids: Iterable[str], night: date) -> pd.DataFrame:
    """Messages planned for an earlier night and not sent yet (planned or failed): message_id,
    campaign_id, customer_id, occasion_key, run_date, state, attempts, and their record (variant,
    send_at, offer_code, made_from)."""
    query = (select(c.message_id, c.campaign_id, c.customer_id, c.occasion_key, c.run_date, c.state, c.attempts,
                    c.variant, c.send_at, c.offer_code, c.made_from)
             .where(c.state.in_(SENDABLE), c.run_date < night, c.campaign_id.in_(list(campaign_ids)))
             .order_by(c.campaign_id, c.customer_id))
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["run_date"] = pd.to_datetime(frame["run_date"]).dt.date
    frame["send_at"] = pd.to_datetime(frame["send_at"])
    return frame


def close(engine: Engine, reasons: Mapping[str, str], state: str) -> None:
    """Move sendable rows to a final state (expired, abandoned) with a reason per message."""
    if not reasons:
        return
    now = _utcnow()
    statement = (update(send_ledger).where(c.message_id == bindparam("mid"), state_in(SENDABLE))
                 .values(state=state, error=bindparam("why"), settled_at=now))
    with engine.begin() as conn:
        conn.execute(statement, [{"mid": m, "why": why[:_ERROR_CHARS]} for m, why in reasons.items()])


def claim(engine: Engine, message_ids: Sequence[str], night: date, backend: str) -> dict[str, int]:
    """Commit these messages as `sending` (next attempt number, time, night, backend) before their
    requests leave. Only sendable rows are claimed; returns {message_id: attempt number}.

    On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED` first: a row another worker or an
    overlapping run is claiming right now is skipped (it is that one's), never claimed twice; the
    state test repeats in the UPDATE. SQLite has one writer at a time and no row locks."""
    with engine.begin() as conn:
        return _claim(conn, message_ids, night, backend)


def _claim(conn: Connection, message_ids: Sequence[str], night: date, backend: str) -> dict[str, int]:
    now = _utcnow()
    claimed: dict[str, int] = {}
    for chunk in _chunks(list(message_ids)):
        rows = conn.execute(_CLAIM, {"ids": list(chunk), "now": now, "night": night, "backend": backend})
        claimed.update({m: int(a) for m, a in rows})
    return claimed


# Delivery's two statements, built once (a night runs them for every window of every batch).
_CLAIM = (update(send_ledger)
          .where(c.message_id.in_(select(c.message_id)
                                  .where(c.message_id.in_(bindparam("ids", expanding=True)), c.state.in_(SENDABLE))
                                  .with_for_update(skip_locked=True)),
                 c.state.in_(SENDABLE))
          .values(state=SENDING, attempts=c.attempts + 1, attempted_at=bindparam("now", type_=DateTime()),
                  attempt_run_date=bindparam("night", type_=Date()), backend=bindparam("backend", type_=String()),
                  settled_at=bindparam("now", type_=DateTime()))
          .returning(c.message_id, c.attempts))
_SETTLE = (update(send_ledger).where(c.message_id == bindparam("mid"), c.state == SENDING)
           .values(state=bindparam("st"), error=bindparam("err"), provider_message_id=bindparam("pid"),
                   accepted_at=bindparam("at"), accepted_on=bindparam("on"), settled_at=bindparam("now")))


def night_tally(engine: Engine, campaign_id: str, night: date) -> tuple[int, int]:
    """A campaign's messages attempted tonight and how many of them did not end sent (failed,
    rejected, unknown, abandoned): what its error-rate pause reads across parallel batches."""
    errors = func.sum(case((c.state.in_((FAILED, REJECTED, UNKNOWN, ABANDONED)), 1), else_=0))
    query = (select(func.count(), errors)
             .where(c.campaign_id == campaign_id, c.attempt_run_date == night, c.state != PLANNED))
    with engine.connect() as conn:
        attempted, failed = conn.execute(query).one()
    return int(attempted or 0), int(failed or 0)


@dataclass(frozen=True)
class Settled:
    message_id: str
    state: str
    error: str | None


def settle(engine: Engine, results: Sequence[DeliveryResult], attempts: Mapping[str, int], night: date,
           max_attempts: int) -> list[Settled]:
    """Record each message's outcome (rows must be `sending`): sent, rejected, unknown, failed, or
    abandoned when a failed message used its last attempt."""
    return settle_and_claim(engine, results, attempts, night, max_attempts)[0]


def settle_and_claim(engine: Engine | Connection, results: Sequence[DeliveryResult], attempts: Mapping[str, int], night: date,
                     max_attempts: int, next_ids: Sequence[str] = (), backend: str = ""
                     ) -> tuple[list[Settled], dict[str, int]]:
    """`settle` these results and `claim` the next window in ONE transaction (one commit per window
    instead of two; the next window is committed `sending` before its requests leave, as `claim`
    does). Returns the settled messages and the next window's {message_id: attempt number}.
    `engine` may be a Connection held across windows (no pool check-out per window)."""
    params, settled = _settle_params(results, attempts, night, max_attempts)
    claimed: dict[str, int] = {}
    if not params and not next_ids:
        return settled, claimed
    with _transaction(engine) as conn:
        if params:
            conn.execute(_SETTLE, params)
        if next_ids:
            claimed = _claim(conn, next_ids, night, backend)
    return settled, claimed


@contextmanager
def _transaction(bind: Engine | Connection):
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    else:
        with bind.begin():
            yield bind


def _settle_params(results: Sequence[DeliveryResult], attempts: Mapping[str, int], night: date,
                   max_attempts: int) -> tuple[list[dict], list[Settled]]:
    now = _utcnow()
    params, settled = [], []
    for r in results:
        state, error = r.outcome, r.error
        if state == FAILED and attempts.get(r.message_id, 0) >= max_attempts:
            state, error = ABANDONED, f"gave up after {attempts[r.message_id]} attempts: {r.error or 'failed'}"
        accepted = r.outcome == SENT
        params.append({"mid": r.message_id, "st": state, "err": error[:_ERROR_CHARS] if error else None,
                       "pid": r.provider_id, "at": (r.accepted_at or now) if accepted else None,
                       "on": night if accepted else None, "now": now})
        settled.append(Settled(r.message_id, state, error))
    return params, settled


def fail_unbuilt(engine: Engine, failures: Mapping[str, str], max_attempts: int) -> None:
    """Messages that could not be built (rendering, address): an attempt that never reached the
    provider; failed (a later run tries again) or abandoned at the attempt cap."""
    if not failures:
        return
    now = _utcnow()
    ids = list(failures)
    with engine.begin() as conn:
        conn.execute(update(send_ledger).where(c.message_id == bindparam("mid"), state_in(SENDABLE))
                     .values(state=FAILED, error=bindparam("err"), attempts=c.attempts + 1, settled_at=now),
                     [{"mid": m, "err": e[:_ERROR_CHARS]} for m, e in failures.items()])
        for chunk in _chunks(ids):
            conn.execute(update(send_ledger)
                         .where(c.message_id.in_(chunk), c.state == FAILED, c.attempts >= max_attempts)
                         .values(state=ABANDONED, error="gave up after the attempt cap: " + c.error))


def release(engine: Engine, message_ids: Sequence[str], error: str) -> None:
    """Rows claimed `sending` whose requests surely never got accepted (the provider refused our
    credentials): back to failed, so a later run sends them once the setting is fixed."""
    with engine.begin() as conn:
        for chunk in _chunks(list(message_ids)):
            conn.execute(update(send_ledger).where(c.message_id.in_(chunk), c.state == SENDING)
                         .values(state=FAILED, error=error[:_ERROR_CHARS], settled_at=_utcnow()))


def states(engine: Engine, message_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Ledger rows (all, or these messages), for reports and tests."""
    query = select(send_ledger)
    with engine.connect() as conn:
        if message_ids is None:
            return pd.read_sql(query, conn)
        return pd.concat([pd.read_sql(query.where(c.message_id.in_(chunk)), conn)
                          for chunk in _chunks(list(message_ids))] or [pd.DataFrame()], ignore_index=True)


def unsettled_rows(engine: Engine) -> pd.DataFrame:
    """Rows whose outcome is not known (`sending` left by a stopped run, `unknown`), oldest first,
    for `lojal delivery unknown`."""
    query = (select(c.message_id, c.campaign_id, c.customer_id, c.state, c.attempts, c.attempted_at,
                    c.attempt_run_date, c.backend, c.error)
             .where(c.state.in_(UNSETTLED)).order_by(c.attempted_at, c.message_id))
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def state_counts(engine: Engine) -> Counter:
    with engine.connect() as conn:
        return Counter({s: int(n) for s, n in conn.execute(select(c.state, func.count()).group_by(c.state))})

