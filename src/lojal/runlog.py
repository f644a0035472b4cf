"""A row per nightly run in the store: when it started and ended, how, and its summary."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pandas as pd
from sqlalchemy import Engine, func, insert, select, update

from lojal.store.schema import runs


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def start_run(engine: Engine, run_date: date) -> int:
    with engine.begin() as conn:
        result = conn.execute(insert(runs).values(run_date=run_date, started_at=_now(), status="running"))
        return int(result.inserted_primary_key[0])


def mark_interrupted(engine: Engine) -> int:
    """Runs still marked running while we hold the store's run lock died without finishing (a
    killed process): mark them interrupted."""
    with engine.begin() as conn:
        return conn.execute(update(runs).where(runs.c.status == "running")
                            .values(status="interrupted", finished_at=_now())).rowcount


def finish_run(engine: Engine, run_id: int, status: str, summary: list[dict] | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id).values(
            finished_at=_now(), status=status,
            summary_json=json.dumps(summary, ensure_ascii=False) if summary is not None else None))


def previous_completed_run(engine: Engine, run_date: date) -> date | None:
    """The latest date before `run_date` whose run completed (failed and later runs do not count)."""
    query = select(func.max(runs.c.run_date)).where(runs.c.status == "completed", runs.c.run_date < run_date)
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def recent_runs(engine: Engine, limit: int = 20) -> pd.DataFrame:
    """The latest runs, newest first, with delivered and failed totals: a failed run counts the
    campaigns it finished; a run whose process was killed outright stays 'running' with none.
    Running such a date again finishes its work."""
    query = select(runs.c.id, runs.c.run_date, runs.c.started_at, runs.c.finished_at, runs.c.status,
                   runs.c.summary_json)
    with engine.connect() as conn:
        frame = pd.read_sql(query.order_by(runs.c.id.desc()).limit(limit), conn)
    summaries = [json.loads(text) if isinstance(text, str) and text else None for text in frame.pop("summary_json")]
    for key in ("delivered", "failed"):
        frame[key] = [None if s is None else sum(c[key] for c in s) for s in summaries]
    return frame
