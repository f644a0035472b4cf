"""`lojal reco ...` commands (registered in lojal.cli)."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from lojal.reco.evaluate import evaluate_split, time_split
from lojal.reco.io import OrdersFileError, parse_columns, read_orders
from lojal.reco.timing import evaluate_timing as run_timing

app = typer.Typer(help="Recommendations: offline evaluation.", no_args_is_help=True)

COLUMNS_HELP = ("key=column pairs mapping the file's columns: customer, product, time, quantity, price "
                "(required), order (cancelled invoices start with C) and category (optional). Defaults are the "
                "UCI Online Retail names: customer=CustomerID,product=StockCode,time=InvoiceDate,"
                "quantity=Quantity,price=UnitPrice,order=InvoiceNo")


@app.callback()
def reco() -> None:
    """Recommendations: offline evaluation."""


@app.command()
def evaluate(
    orders: Path = typer.Option(..., "--orders", help="orders file, CSV or Parquet (one row per order line)"),
    cutoff: str = typer.Option(..., "--cutoff", help="train on history before this date (YYYY-MM-DD)"),
    horizon_days: int = typer.Option(30, "--horizon-days", min=1, help="truth window after the cutoff"),
    k: int = typer.Option(10, "--k", min=1, max=100, help="list length"),
    columns: str = typer.Option(None, "--columns", help=COLUMNS_HELP),
    product_pattern: str = typer.Option(
        None, "--product-pattern", help=r"keep only product codes matching this regex, e.g. '^\d{5}' drops "
                                        "Online Retail's POST, DOT, M, BANK CHARGES"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of a table"),
) -> None:
    """Train every strategy on history before --cutoff and score the next --horizon-days."""
    cutoff_at = _parse_cutoff(cutoff)
    with _reading(orders, columns, product_pattern) as (lines, report, step):
        split = time_split(lines, cutoff_at, horizon_days)
        if len(split.customers) == 0:
            raise typer.BadParameter(
                f"no customer bought both before {cutoff} and in the {horizon_days} days after it "
                f"(the kept rows span {_span(lines)}); choose a cutoff inside that range", param_hint="--cutoff")
        results = evaluate_split(split, k, progress=step)
    payload = {"orders": str(orders), "cutoff": cutoff_at.date().isoformat(), "horizon_days": horizon_days, "k": k,
               "customers": int(len(split.customers)), "catalogue": int(split.train["sku"].nunique()),
               "rows": report.to_dict(), "results": {name: m.to_dict() for name, m in results.items()}}
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print_table(payload)


@app.command("evaluate-timing")
def evaluate_timing(
    orders: Path = typer.Option(..., "--orders", help="orders file, CSV or Parquet (one row per order line)"),
    cutoff: str = typer.Option(..., "--cutoff", help="score pairs as of this date (YYYY-MM-DD); train before it"),
    window_days: int = typer.Option(14, "--window-days", min=1, max=365,
                                    help="a pair is positive when re-bought within this many days after the cutoff"),
    columns: str = typer.Option(None, "--columns", help=COLUMNS_HELP),
    product_pattern: str = typer.Option(
        None, "--product-pattern", help=r"keep only product codes matching this regex, e.g. '^\d{5}'"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of a table"),
) -> None:
    """Who re-buys a product within --window-days: Lojal's repurchase model against simple rules.

    Candidates are the (customer, product) pairs with at least two purchase days before --cutoff."""
    cutoff_at = _parse_cutoff(cutoff)
    with _reading(orders, columns, product_pattern) as (lines, report, step):
        result = run_timing(lines, cutoff_at, window_days, progress=step)
    if result.pairs == 0:
        raise typer.BadParameter(
            f"no customer bought a product on two different days before {cutoff} (the kept rows span "
            f"{_span(lines)}); choose a later cutoff", param_hint="--cutoff")
    payload = result.to_dict()
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print_timing(payload, report.to_dict(), cutoff_at, window_days, result)


def _print_timing(payload: dict, rows: dict, cutoff_at: pd.Timestamp, window_days: int, result) -> None:
    console = Console(width=max(Console().width, 100))
    console.print(f"{rows['rows_read']:,} rows read, {rows['rows_kept']:,} kept; {payload['pairs']:,} pairs "
                  f"bought on 2+ days before {cutoff_at:%Y-%m-%d}, {payload['positives']:,} re-bought within "
                  f"{window_days} days ({payload['positives'] / payload['pairs']:.1%}); "
                  f"lojal: {result.method}, trained on {result.training['rows']:,} earlier pairs")
    table = Table(title=f"re-purchase within {window_days} days of {cutoff_at:%Y-%m-%d}")
    table.add_column("score", no_wrap=True)
    for header in ("ROC AUC", "precision top 1,000", "precision top 5%"):
        table.add_column(header, justify="right", no_wrap=True)
    for name, m in payload["results"].items():
        table.add_row(name, *(f"{m[key]:.3f}" for key in ("auc", "precision_at_1000", "precision_top5pct")))
    console.print(table)


@contextmanager
def _reading(orders: Path, columns: str | None, product_pattern: str | None):
    """Read the orders file (column mapping and cleaning as documented) under a spinner on stderr;
    yields (lines, report, step), where step(text) shows what is being done next."""
    try:
        mapping = parse_columns(columns)
    except OrdersFileError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from exc
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=Console(stderr=True),
                  disable=not sys.stderr.isatty(), transient=True) as progress:
        task = progress.add_task(f"reading {orders.name}")
        try:
            lines, report = read_orders(orders, mapping, product_pattern)
        except OrdersFileError as exc:
            raise typer.BadParameter(str(exc), param_hint=exc.option) from exc
        yield lines, report, lambda text: progress.update(task, description=text)


def _parse_cutoff(text: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(datetime.strptime(text, "%Y-%m-%d"))
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a date; use YYYY-MM-DD, e.g. 2011-11-10", param_hint="--cutoff")


def _span(lines: pd.DataFrame) -> str:
    if lines.empty:
        return "nothing"
    return f"{lines['placed_at'].min():%Y-%m-%d} to {lines['placed_at'].max():%Y-%m-%d}"


def _print_table(payload: dict) -> None:
    rows = payload["rows"]
    dropped = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in rows.items()
                        if k not in ("rows_read", "rows_kept") and v)
    console = Console(width=max(Console().width, 110))
    console.print(f"{rows['rows_read']:,} rows read, {rows['rows_kept']:,} kept (dropped: {dropped or 'none'}); "
                  f"{payload['customers']:,} customers evaluated, {payload['catalogue']:,} products")
    k = payload["k"]
    table = Table(title=f"cutoff {payload['cutoff']}, horizon {payload['horizon_days']} days, K={k}")
    table.add_column("strategy / blend", no_wrap=True)
    for header in (f"Recall@{k}", f"NDCG@{k}", "hit rate", "coverage", "R rep", "R new"):
        table.add_column(header, justify="right", no_wrap=True)
    for name, m in payload["results"].items():
        table.add_row(name, *(f"{m[key]:.3f}" for key in ("recall", "ndcg", "hit_rate", "coverage",
                                                           "recall_repeat", "recall_new")))
    console.print(table)
