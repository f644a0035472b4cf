"""The `lojal` command line. Each command parses options, calls plain functions, prints."""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lojal.errors import LojalError

app = typer.Typer(help="Lojal: retention e-mail for online shops, versioned in git.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console()
err_console = Console(stderr=True)

ProjectOpt = Annotated[Optional[Path], typer.Option("--project", help="folder with config/, segments/, templates/ (default: current)")]
DateOpt = Annotated[Optional[str], typer.Option("--date", help="run date YYYY-MM-DD (default: today in the shop's time zone)")]


def parse_date(value: str | None, option: str = "--date") -> date | None:
    """None stays None: the command then takes today in the shop's time zone."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-24", param_hint=option) from None


def show_progress() -> bool:
    return console.is_terminal and not os.environ.get("CI")


@app.command("sample-data")
def sample_data(
    customers: Annotated[int, typer.Option(min=1, help="number of customers")] = 5000,
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same shop")] = 7,
    until: Annotated[Optional[str], typer.Option(help="last day of history is the day before (default: today)")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="delete the store's data (and ledger) first")] = False,
    project: ProjectOpt = None,
) -> None:
    """Fill the store with a realistic, deterministic Nordic web shop (two years of history)."""
    from lojal.commands import sample_data as run_sample

    until_date = parse_date(until, "--until")
    counts = run_sample(project, customers, seed, until_date, replace, show_progress())
    console.print("Sample shop written: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))


@app.command("import")
def import_file(
    kind: Annotated[str, typer.Argument(help="customers, products, orders or suppressions")],
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file")],
    columns: Annotated[Optional[str], typer.Option(help="column mapping ours=theirs,... e.g. customer_id=CustomerID")] = None,
    project: ProjectOpt = None,
) -> None:
    """Import customers, products, orders (one row per order line) or suppressions; all rows or none."""
    from lojal.commands import import_data

    if kind == "suppressions":
        from lojal.tracking.cli import import_suppressions

        counts = import_suppressions(project, file)
        console.print(", ".join(f"{v:,} {k}" for k, v in counts.items()))
        return
    counts = import_data(project, kind, file, columns)
    console.print(", ".join(f"{v:,} {k}" for k, v in counts.items()))


@app.command()
def run(
    run_date: DateOpt = None,
    project: ProjectOpt = None,
    fail_after: Annotated[Optional[int], typer.Option(hidden=True, help="drill: stop delivery after N messages")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Prefect's log lines")] = False,
    delivery: Annotated[Optional[str], typer.Option(
        help="outbox or sendgrid: overrides delivery.backend in config/sender.yaml for this run")] = None,
) -> None:
    """Run tonight's campaigns end to end (a Prefect flow; ephemeral unless PREFECT_API_URL is set)."""
    from lojal.commands import run_nightly
    from lojal.delivery import BACKENDS

    if delivery is not None and delivery not in BACKENDS:
        raise typer.BadParameter(f"{delivery!r} is not a delivery backend; use one of {', '.join(BACKENDS)}",
                                 param_hint="--delivery")
    result = run_nightly(project, parse_date(run_date), fail_after, verbose, show_progress(), delivery)
    print_run_summary(result)


def print_run_summary(result: dict) -> None:
    funnel = Table(title=f"Nightly run {result['run_date']}", box=box.SIMPLE_HEAD)
    for col in ("campaign", "matched", "excluded", "selected", "rendered", "delivered", "failed"):
        funnel.add_column(col, justify="left" if col == "campaign" else "right", no_wrap=col == "campaign")
    why = Table(title="Why matching customers were excluded", box=box.SIMPLE_HEAD)
    for col in ("campaign", "reason", "customers"):
        why.add_column(col, justify="right" if col == "customers" else "left")
    for s in result["campaigns"]:
        funnel.add_row(s["campaign_id"], str(s["matched"]), str(sum(s["excluded"].values())), str(s["selected"]),
                       str(s["rendered"]), str(s["delivered"]), str(s["failed"]))
        for reason, count in s["excluded"].items():
            why.add_row(s["campaign_id"], reason, str(count))
    console.print(funnel)
    if why.row_count:
        console.print(why)
    total = sum(s["delivered"] for s in result["campaigns"])
    for s in result["campaigns"]:
        if s.get("paused"):
            err_console.print(f"{s['campaign_id']} {s['paused']}", markup=False, highlight=False)
    if result.get("reconciled"):
        console.print("Settled before planning: " + ", ".join(f"{k}: {v}" for k, v in sorted(result["reconciled"].items())),
                      markup=False, highlight=False)
    if result.get("delivery", "outbox").startswith("outbox"):
        console.print(f"{total} new messages delivered. Open {Path(result['outbox']) / 'index.html'}")
    else:
        console.print(f"{total} new messages accepted by {result['delivery']}. `lojal delivery unknown` lists "
                      "messages whose outcome is not known yet.")
    console.print(f"Funnel chart: {result['report']}")


@app.command()
def check(
    project: ProjectOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print problems as JSON")] = False,
) -> None:
    """Check every file under config/, segments/ and templates/; list all problems."""
    from lojal.paths import Paths
    from lojal.pipeline import check_project

    problems = check_project(Paths.resolve(project))
    errors = [p for p in problems if p.severity == "error"]
    if as_json:
        print(json.dumps({"ok": not errors, "problems": [p.to_dict() for p in problems]}, ensure_ascii=False, indent=2))
    else:
        for p in problems:
            (err_console if p.severity == "error" else console).print(str(p), markup=False, highlight=False)
        console.print(f"{len(errors)} error(s), {len(problems) - len(errors)} warning(s)" if problems else "All files are valid.")
    raise typer.Exit(1 if errors else 0)


@app.command()
def runs(
    project: ProjectOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="how many of the latest runs")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print the runs as JSON")] = False,
) -> None:
    """The latest nightly runs: date, start (UTC), duration, status, delivered and failed."""
    from lojal.paths import Paths
    from lojal.runlog import recent_runs
    from lojal.store import connect
    from lojal.store.db import require_schema

    paths = Paths.resolve(project)
    engine = connect(paths.database_url)
    require_schema(engine)
    frame = recent_runs(engine, limit)
    if as_json:
        print(json.dumps([_run_record(row) for row in frame.to_dict("records")], indent=2))
        return
    if frame.empty:
        console.print("No runs yet: `lojal run` starts one.")
        return
    table = Table(title="Latest runs", box=box.SIMPLE_HEAD)
    for col in ("run", "date", "started (UTC)", "took", "status", "delivered", "failed"):
        table.add_column(col, justify="right" if col in ("run", "delivered", "failed") else "left", no_wrap=True)
    for run_row in frame.to_dict("records"):
        record = _run_record(run_row)
        took = "" if record["seconds"] is None else f"{record['seconds']:.0f} s"
        table.add_row(str(record["id"]), record["run_date"], record["started_at"][:16].replace("T", " "), took,
                      record["status"], *("" if record[k] is None else f"{record[k]:,}" for k in ("delivered", "failed")))
    console.print(table)
    console.print(f"Funnel charts: {paths.state / 'runs' / '<date>' / 'report.html'}", highlight=False)


def _run_record(row: dict) -> dict:
    import pandas as pd

    finished = None if pd.isna(row["finished_at"]) else pd.Timestamp(row["finished_at"])
    started = pd.Timestamp(row["started_at"])
    return {"id": int(row["id"]), "run_date": pd.Timestamp(row["run_date"]).date().isoformat(),
            "started_at": started.isoformat(), "finished_at": finished.isoformat() if finished else None,
            "seconds": (finished - started).total_seconds() if finished else None, "status": row["status"],
            **{k: None if pd.isna(row[k]) else int(row[k]) for k in ("delivered", "failed")}}


def _register_subcommands() -> None:
    from lojal.reco.cli import app as reco_app
    from lojal.render.cli import app as preview_app
    from lojal.segments.cli import app as segments_app

    app.add_typer(segments_app, name="segments", help="List, show and explain segments.")
    app.add_typer(reco_app, name="reco", help="Recommendation tools (offline evaluation).")
    app.add_typer(preview_app, name="preview", help="Preview rendered e-mails in a browser.")
    from lojal.sendgrid.cli import register as register_sendgrid

    register_sendgrid(app)  # `lojal sendgrid-local`, `lojal webhook serve`
    from lojal.delivery.cli import app as delivery_app

    app.add_typer(delivery_app, name="delivery", help="The send ledger: messages whose outcome is not known.")
    from lojal.tracking.cli import app as suppressions_app
    from lojal.tracking.cli import report_command

    app.command("report")(report_command)

    app.add_typer(suppressions_app, name="suppressions", help="The suppression list: list, remove, sync, apply.")


_register_subcommands()


def main() -> None:
    try:
        app()
    except LojalError as exc:
        err_console.print(Text("error: ", style="bold red") + Text(str(exc)))
        sys.exit(1)
