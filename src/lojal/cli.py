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
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from lojal.errors import LojalError

# Sub-command groups, imported only when one of them runs (`lojal --help` stays fast): name, module
# holding a Typer `app`, help line.
LAZY_GROUPS = [
    ("segments", "lojal.segments.cli", "List, show and explain segments."),
    ("reco", "lojal.reco.cli", "Recommendation tools (offline evaluation)."),
    ("preview", "lojal.render.cli", "Preview rendered e-mails in a browser; one customer's night with --customer."),
    ("db", "lojal.store.cli", "The store's schema: upgrade it in place, show its revision."),
    ("delivery", "lojal.delivery.cli", "The send ledger: messages whose outcome is not known."),
    ("plan", "lojal.plans_cli", "Dry runs' plans: compare two nights (`plan diff`)."),
    ("ledger", "lojal.ledger_cli", "The send ledger: one message's record, rendered again (`ledger show`)."),
]


class _LazyGroup(TyperGroup):
    """Stands in for a sub-command group in the help listing; running it imports the real one."""

    def __init__(self, name: str, module: str, help: str):
        super().__init__(name=name, help=help, no_args_is_help=True)
        self.module = module

    def load(self) -> TyperGroup:
        import importlib

        command = typer.main.get_group(importlib.import_module(self.module).app)
        command.name, command.help = self.name, self.help
        return command

    def make_context(self, info_name, args, parent=None, **extra):
        return self.load().make_context(info_name, args, parent=parent, **extra)


class _LojalGroup(TyperGroup):
    def __init__(self, **attrs):
        super().__init__(**attrs)
        for name, module, help_line in LAZY_GROUPS:
            self.add_command(_LazyGroup(name, module, help_line))


app = typer.Typer(help="Lojal: retention e-mail for online shops, versioned in git.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=_LojalGroup)
# soft_wrap: a message is one line however narrow the terminal (CI and editors parse them).
from lojal.console import make_console  # noqa: E402 (reads the width when it prints)
console = make_console(soft_wrap=True)
err_console = make_console(stderr=True, soft_wrap=True)

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


def one_line(text: str) -> str:
    """A message on one line: line breaks inside it (a quoted value, a YAML excerpt) escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


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
    kind: Annotated[str, typer.Argument(help="customers, products, orders, prices (per market), translations or suppressions")],
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file")],
    columns: Annotated[Optional[str], typer.Option(help="column mapping ours=theirs,... e.g. customer_id=CustomerID")] = None,
    project: ProjectOpt = None,
) -> None:
    """Import customers, products, orders (one row per order line), prices per market, product
    translations per locale or suppressions; all rows or none."""
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
    dask_local: Annotated[Optional[int], typer.Option(min=1, max=64, help=(
        "render and send on a local Dask cluster of N worker processes (else where config/schedule.yaml's "
        "runner: says; by default in this process)"))] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=(
        "decide only: send nothing, write no ledger row; write <state>/plans/<date>/decisions.parquet and .csv "
        "and print the funnel per campaign"))] = False,
    campaign: Annotated[Optional[str], typer.Option("--campaign", help="run this campaign alone (the others untouched)")] = None,
) -> None:
    """Run tonight's campaigns end to end (a Prefect flow; ephemeral unless PREFECT_API_URL is set)."""
    from lojal.commands import run_nightly
    from lojal.delivery import BACKENDS

    if delivery is not None and delivery not in BACKENDS:
        raise typer.BadParameter(f"{delivery!r} is not a delivery backend; use one of {', '.join(BACKENDS)}",
                                 param_hint="--delivery")
    state = run_nightly(project, parse_date(run_date), fail_after, verbose, show_progress(), delivery, dask_local,
                        dry_run=dry_run, campaign=campaign)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, dict) and outcome.get("dry_run"):
        print_funnel(outcome)
        return
    if isinstance(outcome, dict):
        print_run_summary(outcome)
        errors = [e for s in outcome["campaigns"] for e in s.get("errors", [])]
        failed = sum(s["failed"] for s in outcome["campaigns"])
        for error in errors:
            err_console.print(Text("failed: ", style="bold red") + Text(error), soft_wrap=True)
        if failed:
            err_console.print(f"{failed} message(s) failed (first {len(errors)} above); the next run retries them. "
                              "`lojal runs show` lists them.", highlight=False)
            raise typer.Exit(1)
        return
    if isinstance(outcome, LojalError):
        raise outcome
    if verbose and isinstance(outcome, BaseException):
        import traceback

        traceback.print_exception(outcome)
    err_console.print(Text("error: ", style="bold red") + Text(f"{type(outcome).__name__}: {outcome}"
                                                                if isinstance(outcome, BaseException) else state.message or ""))
    raise typer.Exit(1)


@app.command()
def serve(
    project: ProjectOpt = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="at most this many runs at once")] = None,
) -> None:
    """Schedule and run the nightly run and the morning report on this machine (config/schedule.yaml)."""
    from lojal.commands import serve as serve_deployments

    serve_deployments(project, limit)


def print_funnel(result: dict) -> None:
    """A dry run's funnel per campaign: considered, selected, held out, and each reason's count."""
    print_decisions(result["funnel"], f"Plan for {result['run_date']} (dry run: nothing sent, no ledger row written)")
    console.print(f"Decision log: {result['plan']} and {Path(result['plan_csv']).name}", highlight=False)


def print_decisions(rows: list[dict], title: str) -> None:
    """The decision funnel per campaign (lojal.plans.funnel_records) as a table."""
    from lojal.decisions import REASONS

    reasons = [r for r in REASONS if r != "held_out" and any(row.get(r) for row in rows)]
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in ("campaign", "considered", "selected", "held_out", *reasons):
        table.add_column(col, justify="left" if col == "campaign" else "right", no_wrap=col == "campaign")
    for row in rows:
        table.add_row(row["campaign"], *(f"{row.get(col, 0):,}" for col in ("considered", "selected", "held_out", *reasons)))
    console.print(table)


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
    if result.get("funnel"):
        print_decisions(result["funnel"], f"Decisions {result['run_date']}: considered, selected, held out, and why not")
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
    compare_mjml: Annotated[bool, typer.Option("--compare-mjml", help="also compile templates with official MJML "
                                               "(Node) and report its errors and differences")] = False,
) -> None:
    """Check every file under config/, segments/ and templates/; list all problems."""
    from lojal.paths import Paths
    from lojal.pipeline import check_project

    problems = check_project(Paths.resolve(project), compare_mjml)
    errors = [p for p in problems if p.severity == "error"]
    if as_json:
        print(json.dumps({"ok": not errors, "problems": [p.to_dict() for p in problems]}, ensure_ascii=False, indent=2))
    else:  # plain lines, never wrapped: `path:line:col: message`, one problem per line
        for p in problems:
            typer.echo(one_line(str(p)), err=p.severity == "error")
        typer.echo(f"{len(errors)} error(s), {len(problems) - len(errors)} warning(s)" if problems else "All files are valid.")
    raise typer.Exit(1 if errors else 0)


runs_app = typer.Typer(invoke_without_command=True, help="The latest nightly runs; `lojal runs show ID` for one.")
app.add_typer(runs_app, name="runs")


def _store(project: Path | None):
    from lojal.paths import Paths
    from lojal.store import connect

    paths = Paths.resolve(project)
    return paths, connect(paths.database_url)


@runs_app.callback()
def runs(
    ctx: typer.Context,
    project: ProjectOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="how many of the latest runs")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print the runs as JSON")] = False,
) -> None:
    """The latest nightly runs: date, start (UTC), duration, status, delivered and failed."""
    if ctx.invoked_subcommand:
        return
    from lojal.runlog import recent_runs
    from lojal.store.migrate import schema_state

    paths, engine = _store(project)
    empty = schema_state(engine).kind == "empty"
    frame = None if empty else recent_runs(engine, limit)  # even from a store awaiting `lojal db upgrade`
    if as_json:
        if frame is None:
            print("[]")
            return
        print(json.dumps([_run_record(row) for row in frame.to_dict("records")], indent=2))
        return
    if frame is None or frame.empty:
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
    failures = [(record["id"], error) for record in map(_run_record, frame.to_dict("records")) for error in record["errors"]]
    if failures:
        console.print("Why messages failed (first reasons per campaign; every one is in the send ledger):")
        for run_id, error in failures:
            typer.echo(one_line(f"  run {run_id}: {error}"))
    for record in (_run_record(r) for r in frame.to_dict("records")):
        if record["error"]:
            err_console.print(f"run {record['id']}: {record['error'].splitlines()[0]}", highlight=False, soft_wrap=True)
    console.print(f"Funnel charts: {paths.state / 'runs' / '<date>' / 'report.html'}; one run: `lojal runs show ID`",
                  highlight=False)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[int, typer.Argument(help="the run's number (first column of `lojal runs`)")],
    project: ProjectOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the run as JSON")] = False,
) -> None:
    """One run: its status, why it failed, every campaign's funnel and first errors (with customer ids)."""
    from lojal.runlog import get_run

    from lojal.store.migrate import schema_state

    _, engine = _store(project)
    record = None if schema_state(engine).kind == "empty" else get_run(engine, run_id)
    if record is None:
        err_console.print(f"error: there is no run {run_id}; `lojal runs` lists them", highlight=False)
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(record, indent=2, default=str, ensure_ascii=False))
        return
    console.print(f"Run {record['id']} for {record['run_date']}: {record['status']} "
                  f"(started {record['started_at']} UTC, finished {record['finished_at'] or '-'})", highlight=False)
    if record.get("flow_run_id"):
        console.print(f"Prefect flow run: {record['flow_run_id']} (open it in the Prefect UI: /runs/flow-run/<id>)",
                      highlight=False)
    if record.get("error"):
        err_console.print(Text("error: ", style="bold red") + Text(record["error"]), soft_wrap=True)
    for campaign in record["campaigns"] or []:
        console.print(f"{campaign['campaign_id']}: selected {campaign.get('selected', 0)}, delivered "
                      f"{campaign['delivered']}, failed {campaign['failed']}", highlight=False)
        for error in campaign.get("errors", []):
            console.print(f"  failed: {error}", highlight=False, soft_wrap=True, markup=False)


def _run_record(row: dict) -> dict:
    import pandas as pd

    finished = None if pd.isna(row["finished_at"]) else pd.Timestamp(row["finished_at"])
    started = pd.Timestamp(row["started_at"])
    return {"id": int(row["id"]), "run_date": pd.Timestamp(row["run_date"]).date().isoformat(),
            "started_at": started.isoformat(), "finished_at": finished.isoformat() if finished else None,
            "seconds": (finished - started).total_seconds() if finished else None, "status": row["status"],
            "error": row.get("error") if isinstance(row.get("error"), str) else None,
            "errors": list(row.get("errors") or []),
            **{k: None if pd.isna(row[k]) else int(row[k]) for k in ("delivered", "failed")}}


def _register_commands() -> None:
    from lojal.sendgrid.cli import register as register_sendgrid  # imports only typer: --help stays fast

    register_sendgrid(app)  # `lojal sendgrid-local`, `lojal webhook serve`
    from lojal.proof_cli import send_test_command  # imports only typer at the top

    app.command("send-test")(send_test_command)
    from lojal.tracking.cli import app as suppressions_app  # imports only typer and rich at the top
    from lojal.tracking.cli import report_command

    app.command("report")(report_command)
    app.add_typer(suppressions_app, name="suppressions", help="The suppression list: list, remove, sync, apply.")


_register_commands()


def main() -> None:
    try:
        app()
    except LojalError as exc:
        err_console.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        sys.exit(1)
