"""Tracking's two steps in the nightly run (wired by lojal/flows/nightly.py, one call each):

- before planning, `apply_suppressions`: Event Webhook events not applied yet (bounces, spam
  reports, unsubscribes, group unsubscribes and resubscribes) become suppressions, so those
  customers are skipped tonight by the audience gate ("on the suppression list");
- after the night, `publish_report`: the last nights per campaign, built from the store (ledger,
  events, orders), as `<state>/runs/<night>/tracking.html` and Prefect artifacts (markdown, a
  table and a link to the page). Built from the store, never from one run's counters, a re-run of
  a night that sends nothing new shows the same numbers instead of an empty report.

Neither ever sees the shop's secret.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from lojal.store import connect
from lojal.suppressions import Applied, apply_events
from lojal.tracking.report import FUNNEL, Report, money_text, write_night_report

REPORT_NIGHTS = 7
log = logging.getLogger("lojal.tracking")


def apply_suppressions(paths) -> Applied:
    """New webhook events -> suppressions, before the night's shop data (and suppression list) is read."""
    engine = connect(paths.database_url)
    try:
        return apply_events(engine)
    finally:
        engine.dispose()


def suppressions_line(applied: Applied) -> str:
    """What operators read in the run's log and report."""
    if not applied.suppressed and not applied.lifted:
        return f"suppressions before planning: {applied.events} new event(s), nobody newly suppressed"
    lifted = f"; {applied.lifted} group unsubscribe(s) lifted" if applied.lifted else ""
    return (f"suppressions before planning: {applied.suppressed} newly suppressed ({applied.reason_text()}) "
            f"from {applied.events} event(s){lifted}; they are skipped tonight as 'on the suppression list'")


def publish_report(paths, config, run_date: date, applied: Applied | None = None,
                   nights: int = REPORT_NIGHTS) -> Path | None:
    """Write the night's tracking report and publish it as Prefect artifacts; returns the page.
    A failure here is logged and returns None: the night's messages are already sent and recorded."""
    try:
        engine = connect(paths.database_url)
        try:
            page, markdown, report = write_night_report(engine, paths.state, run_date, config, nights)
        finally:
            engine.dispose()
        if applied is not None:
            markdown += "\n\n" + suppressions_line(applied) + "."
        _artifacts(report, markdown, page, run_date)
        return page
    except Exception as exc:  # noqa: BLE001 - the report never turns a delivered night into a failed one
        log.error("the tracking report for %s could not be published: %s: %s", run_date, type(exc).__name__, exc)
        return None


def table_rows(report: Report) -> list[dict]:
    """One row per campaign over the report's nights: the funnel, conversions, revenue and lift."""
    rows = []
    for c in report.campaigns:
        lift = c.lift.revenue_per_recipient
        rows.append({"campaign": c.campaign_id, **{k: c.total(k) for k in FUNNEL},
                     "converted": c.conversions, "revenue": money_text(c.revenue, report.currency),
                     "held out": c.lift.held_out.recipients,
                     "revenue lift / recipient": money_text(lift.estimate, report.currency) if lift else "n/a",
                     "95% interval": (f"{money_text(lift.low, report.currency)} to "
                                      f"{money_text(lift.high, report.currency)}") if lift else "n/a"})
    return rows


def _artifacts(report: Report, markdown: str, page: Path, run_date: date) -> None:
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    span = f"{report.date_from} to {report.date_to}"
    create_markdown_artifact(markdown, key="tracking-report", description=f"E-mail results {span}")
    create_table_artifact(table_rows(report), key="tracking-table", description=f"Per campaign, nights {span}")
    create_link_artifact(page.resolve().as_uri(), link_text=f"tracking report {run_date} (HTML, charts)",
                         key="tracking-report-page", description=f"The page with charts for nights {span}")
