"""The morning report: did last night do everything? One markdown artifact per night, and a Failed
state (for automations) when the night has no run, or its latest run did not complete.

No `from __future__ import annotations` (see flows/nightly.py)."""

from datetime import date

import pandas as pd

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Failed

from lojal import schedule
from lojal.paths import Paths
from lojal.report import morning_markdown
from lojal.runlog import COMPLETED, get_run, recent_runs
from lojal.store import connect
from lojal.store.migrate import schema_state


def _report_name() -> str:
    return f"report-{schedule.flow_run_night()}"


@flow(name="report", flow_run_name=_report_name)
def report(run_date: date | None = None, project_dir: str | None = None) -> dict:
    """Report on the night `run_date` (default: the scheduled time's date in the shop's zone, so a
    07:00 report covers the 02:00 run of the same date)."""
    night = schedule.night_of(run_date, project_dir, current_flow_run.scheduled_start_time)
    engine = connect(Paths.resolve(project_dir).database_url)
    frame = None if schema_state(engine).kind == "empty" else recent_runs(engine, 200)
    ids = [] if frame is None else frame["id"][pd.to_datetime(frame["run_date"]).dt.date == night]
    runs = [get_run(engine, int(i)) for i in ids]
    create_markdown_artifact(morning_markdown(night, runs), key="night-report",
                             description=f"What the night of {night} did")
    latest = runs[0] if runs else None
    outcome = {"run_date": night.isoformat(), "runs": len(runs), "status": latest["status"] if latest else None}
    if latest is None:
        return Failed(message=f"no nightly run for {night}: is the nightly deployment scheduled and served?",
                      data=outcome)
    if latest["status"] != COMPLETED:
        why = latest.get("error") or f"{sum(c['failed'] for c in latest['campaigns'] or [])} message(s) failed"
        return Failed(message=f"the night of {night} is {latest['status']}: {why.splitlines()[0]}", data=outcome)
    return outcome
