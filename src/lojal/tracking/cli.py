"""CLI: `lojal suppressions list|remove|sync|apply` (and `lojal import suppressions FILE.csv`).

    lojal suppressions list [--reason R] [--limit N] [--json]
    lojal suppressions remove EMAIL
    lojal suppressions sync            # SendGrid's lists through its API (SENDGRID_API_KEY)
    lojal suppressions apply           # delivery_events -> suppressions (also done by the webhook at once)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

app = typer.Typer(help="The suppression list: who is never mailed, and why.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
from lojal.console import make_console  # noqa: E402 (reads the width when it prints)
console = make_console()
ProjectOpt = Annotated[Optional[Path], typer.Option("--project", help="project folder (default: current)")]


def _engine(project: Path | None):
    from lojal.paths import Paths
    from lojal.store import connect
    from lojal.store.db import init_schema

    engine = connect(Paths.resolve(project).database_url)
    init_schema(engine)
    return engine


def import_suppressions(project: Path | None, file: Path) -> dict[str, int]:
    """`lojal import suppressions FILE.csv`: all rows or none (DataImportError lists every bad row)."""
    from lojal.suppressions import import_csv

    result = import_csv(_engine(project), file)
    return {"rows": result.rows, "suppressed": result.added, "already suppressed": result.already}


@app.command("list")
def list_command(
    reason: Annotated[Optional[str], typer.Option(help="only this reason (bounce, spam_report, unsubscribe, ...)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first (0: all)")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    project: ProjectOpt = None,
) -> None:
    """Suppressed addresses, newest first, with reason, source and time."""
    from lojal.suppressions import list_suppressions

    rows = list_suppressions(_engine(project), reason, limit or None)
    if as_json:
        for row in rows:
            print(json.dumps({**row, "created_at": row["created_at"].isoformat()}, ensure_ascii=False))
        return
    table = Table("email", "reason", "source", "group", "since (UTC)")
    for row in rows:
        table.add_row(row["email"], row["reason"], row["source"] or "", str(row["asm_group_id"] or ""),
                      row["created_at"].strftime("%Y-%m-%d %H:%M"))
    console.print(table)
    console.print(f"{len(rows)} shown")


@app.command("remove")
def remove_command(email: Annotated[str, typer.Argument(help="the address to mail again")], project: ProjectOpt = None) -> None:
    """Lift a suppression (e.g. a mistaken import). Consent is still required to mail anyone."""
    from lojal.suppressions import remove

    if not remove(_engine(project), email):
        console.print(f"{email} is not suppressed")
        raise typer.Exit(1)
    console.print(f"{email} removed from the suppression list")


@app.command("apply")
def apply_command(project: ProjectOpt = None) -> None:
    """Turn new bounces, complaints and unsubscribes from the Event Webhook into suppressions."""
    from lojal.suppressions import apply_events

    applied = apply_events(_engine(project))
    console.print(f"{applied.events} events read: {applied.suppressed} suppressed, {applied.lifted} lifted")


@app.command("sync")
def sync_command(project: ProjectOpt = None) -> None:
    """Bring in SendGrid's bounces, blocks, spam reports, invalid e-mails, global and group unsubscribes."""
    from lojal.config import load_config
    from lojal.paths import Paths
    from lojal.sendgrid.backend import api_base_url, resolve_api_key
    from lojal.tracking.sync import client_for, sync

    settings = load_config(Paths.resolve(project)).sender.delivery.sendgrid
    with client_for(api_base_url(settings), resolve_api_key(settings), settings.timeout_seconds) as client:
        result = sync(_engine(project), client, lambda name, n: console.print(f"{name}: {n:,} read"))
    console.print(f"{sum(result.read.values()):,} entries read, {result.added:,} newly suppressed")


def report_command(
    date_from: Annotated[Optional[str], typer.Option("--from", help="first night YYYY-MM-DD (default: 6 nights before --to)")] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="last night YYYY-MM-DD (default: today in the shop's zone)")] = None,
    out: Annotated[Path, typer.Option("--out", help="the HTML file to write")] = Path("report.html"),
    cuped: Annotated[bool, typer.Option("--cuped/--no-cuped", help="adjust lift with pre-period spend")] = True,
    project: ProjectOpt = None,
) -> None:
    """A self-contained HTML report: daily funnel, attributed revenue, lift with its interval, A/B arms.
    Prints the totals per campaign and where the page is."""
    from datetime import timedelta

    from lojal.cli import parse_date
    from lojal.clock import shop_today
    from lojal.config import load_config
    from lojal.paths import Paths
    from lojal.tracking.report import gather, render_html

    config = load_config(Paths.resolve(project))
    end = parse_date(date_to, "--to") or shop_today(config.brand.timezone)
    start = parse_date(date_from, "--from") or end - timedelta(days=6)
    if end < start:
        raise typer.BadParameter("--to is before --from")
    t = config.tracking
    report = gather(_engine(project), start, end, config.brand.currency, t.attribution_window_days, t.attribute_opens,
                    cuped, t.ab_confidence, t.ab_min_sample)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report), encoding="utf-8")
    console.print(totals_table(report))
    console.print(f"Report with charts: {out.resolve()} ({len(report.campaigns)} campaigns, nights {start} to {end})")


TERMINAL_COLUMNS = (("sent", "sent"), ("delivered", "deliv"), ("opened", "opens"), ("clicked", "clicks"),
                    ("bounced", "bounce"), ("unsubscribed", "unsub"), ("complained", "spam"))


def totals_table(report) -> Table:
    """The report's numbers per campaign, narrow enough for an 80-column terminal (lift and its
    interval are on the page)."""
    from rich import box

    from lojal.tracking.report import money_text

    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True,
                  title=f"E-mail results {report.date_from} to {report.date_to}")
    table.add_column("campaign", overflow="fold")
    for header in (*(short for _, short in TERMINAL_COLUMNS), "conv.", "revenue"):
        table.add_column(header, justify="right", no_wrap=True)
    for c in report.campaigns:
        table.add_row(c.campaign_id, *(str(c.total(key)) for key, _ in TERMINAL_COLUMNS), str(c.conversions),
                      money_text(c.revenue, report.currency))
    return table
