"""A row per nightly run in the store: when it started and ended, how, and its summary."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, inspect, select, update

from lojal.store.schema import runs


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# A partial run planned and delivered the night, but some messages failed (they are retried).
COMPLETED, PARTIAL, FAILED, RUNNING = "completed", "partial", "failed", "running"


def _existing(conn: Connection, values: dict) -> dict:
    """Only the columns the store has: a run is recorded even in a store awaiting `lojal db upgrade`."""
    have = {c["name"] for c in inspect(conn).get_columns(runs.name)}
    return {k: v for k, v in values.items() if k in have}


def _columns(conn: Connection) -> list:
    have = set(_existing(conn, {c.name: None for c in runs.columns}))
    return [c for c in runs.columns if c.name in have]


def start_run(engine: Engine, run_date: date, flow_run_id: str | None = None) -> int:
    with engine.begin() as conn:
        values = _existing(conn, {"run_date": run_date, "started_at": _now(), "status": RUNNING,
                                  "flow_run_id": flow_run_id})
        result = conn.execute(insert(runs).values(**values))
        return int(result.inserted_primary_key[0])


def mark_interrupted(engine: Engine, keep: int | None = None) -> int:
    """Runs still marked running while we hold the store's run lock died without finishing (a
    killed process): mark them interrupted. `keep`: this run's own row."""
    query = update(runs).where(runs.c.status == RUNNING)
    if keep is not None:
        query = query.where(runs.c.id != keep)
    with engine.begin() as conn:
        return conn.execute(query.values(status="interrupted", finished_at=_now())).rowcount


def finish_run(engine: Engine, run_id: int, status: str, summary: list[dict] | None = None,
               error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id).values(**_existing(conn, {
            "finished_at": _now(), "status": status, "error": error,
            "summary_json": json.dumps(summary, ensure_ascii=False) if summary is not None else None})))


def get_run(engine: Engine, run_id: int) -> dict | None:
    """One run with its summary (campaigns and their first errors, with customer ids) and error."""
    with engine.connect() as conn:
        row = conn.execute(select(*_columns(conn)).where(runs.c.id == run_id)).mappings().first()
    if row is None:
        return None
    record = dict(row)
    record["campaigns"] = json.loads(record.pop("summary_json") or "null")
    return record


def previous_completed_run(engine: Engine, run_date: date) -> date | None:
    """The latest date before `run_date` whose run completed, or completed with some messages failed
    (partial); failed and later runs do not count."""
    query = select(func.max(runs.c.run_date)).where(runs.c.status.in_([COMPLETED, PARTIAL]),
                                                    runs.c.run_date < run_date)
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def recent_runs(engine: Engine, limit: int = 20) -> pd.DataFrame:
    """The latest runs, newest first, with delivered and failed totals and the first reasons messages
    failed ("campaign: reason", as recorded in the ledger): a failed run counts the
    campaigns it finished; a run whose process was killed outright stays 'running' with none.
    Running such a date again finishes its work."""
    with engine.connect() as conn:
        frame = pd.read_sql(select(*_columns(conn)).order_by(runs.c.id.desc()).limit(limit), conn)
    summaries = [json.loads(text) if isinstance(text, str) and text else None for text in frame.pop("summary_json")]
    for key in ("delivered", "failed"):
        frame[key] = [None if s is None else sum(c[key] for c in s) for s in summaries]
    frame["errors"] = [[] if s is None else [f"{c['campaign_id']}: {e}" for c in s for e in c.get("errors", [])]
                       for s in summaries]
    return frame
