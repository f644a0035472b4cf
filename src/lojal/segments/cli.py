"""`lojal segments list | show NAME | explain NAME --customer ID`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from lojal.audience import exclusion_reasons, marketable_mask
from lojal.config import load_config
from lojal.errors import LojalError
from lojal.features import compute_features
from lojal.paths import Paths
from lojal.segments.evaluate import evaluate_segments
from lojal.segments.explain import explain as explain_customer
from lojal.segments.loader import SegmentSet, load_segments
from lojal.runlog import previous_completed_run
from lojal.store import connect, load_shop_data, shop_today
from lojal.store.shopdata import ShopData

app = typer.Typer(help="List, inspect and explain the segments in segments/*.yaml.", no_args_is_help=True)
from lojal.console import make_console  # noqa: E402 (reads the width when it prints)
console = make_console(soft_wrap=True)

ProjectOption = typer.Option(Path("."), "--project", help="project folder (with config/, segments/)")
DateOption = typer.Option(None, "--date", help="run date YYYY-MM-DD (default: today in the shop's time zone)", formats=["%Y-%m-%d"])


@dataclass
class Loaded:
    segment_set: SegmentSet
    data: ShopData
    features: pd.DataFrame


def load(project: Path, run_date) -> Loaded:
    paths = Paths.resolve(project)
    config = load_config(paths)
    segment_set = load_segments(paths)
    day = run_date.date() if run_date else shop_today(config.brand.timezone)
    engine = connect(paths.database_url)
    data = load_shop_data(engine, day, config.brand.timezone)
    # previous_tier as the nightly run would see it: at the last completed run
    return Loaded(segment_set, data, compute_features(data, config.loyalty, previous_completed_run(engine, day)))


def fail(exc: LojalError) -> None:
    console.print(f"[red]{exc}[/red]", highlight=False)
    raise typer.Exit(1)


@app.command("list")
def list_segments(project: Path = ProjectOption, run_date: datetime | None = DateOption) -> None:
    """Every segment with its description, matching and marketable (consented, not suppressed) counts."""
    try:
        loaded = load(project, run_date)
    except LojalError as exc:
        fail(exc)
    membership = evaluate_segments(loaded.segment_set, loaded.features, loaded.data)
    marketable = marketable_mask(loaded.data).reindex(membership.index, fill_value=False).to_numpy()
    table = Table(title=f"Segments on {loaded.data.run_date.isoformat()} ({len(membership):,} customers)")
    for column, justify in (("segment", "left"), ("description", "left"), ("matching", "right"), ("marketable", "right")):
        table.add_column(column, justify=justify)
    for segment in sorted(loaded.segment_set, key=lambda s: s.name):
        members = membership[segment.name].to_numpy()
        table.add_row(segment.name, segment.description, f"{members.sum():,}", f"{(members & marketable).sum():,}")
    console.print(table)
    console.print("marketable = matching customers with e-mail consent who are not suppressed; the engine always "
                  "applies this, no segment can switch it off.")


@app.command("show")
def show(name: str, project: Path = ProjectOption, run_date: datetime | None = DateOption,
         sample: int = typer.Option(10, "--sample", min=0, help="how many members to list")) -> None:
    """Count and a sample of a segment's members."""
    try:
        loaded = load(project, run_date)
        segment = loaded.segment_set[name] if name in loaded.segment_set.segments else None
        if segment is None:
            raise LojalError(f"no segment '{name}'; segments: {', '.join(sorted(loaded.segment_set.names))}")
    except LojalError as exc:
        fail(exc)
    membership = evaluate_segments(loaded.segment_set, loaded.features, loaded.data)[name]
    reasons = exclusion_reasons(loaded.data).reindex(membership.index)
    members = membership[membership].index
    marketable = int(reasons.loc[members].isna().sum())
    console.print(f"[bold]{name}[/bold] ({segment.path}): {segment.description}")
    console.print(f"{len(members):,} matching, {marketable:,} marketable on {loaded.data.run_date.isoformat()}")
    table = Table()
    for column in ("customer_id", "email", "tier", "last order", "orders", "rfm_group", "mailable"):
        table.add_column(column)
    for customer_id in members[:sample]:
        row = loaded.features.loc[customer_id]
        last = row["last_order_at"]
        reason = reasons.loc[customer_id]
        table.add_row(str(customer_id), str(loaded.data.customers.at[customer_id, "email"]), str(row["tier"]),
                      "-" if pd.isna(last) else last.date().isoformat(), str(row["order_count"]),
                      str(row["rfm_group"]), "yes" if pd.isna(reason) else f"no: {reason}")
    console.print(table)


@app.command("explain")
def explain(name: str, customer: int = typer.Option(..., "--customer", help="customer id"),
            project: Path = ProjectOption, run_date: datetime | None = DateOption) -> None:
    """Each condition of the segment, the customer's value, and whether it held."""
    try:
        loaded = load(project, run_date)
        result = explain_customer(loaded.segment_set, name, customer, loaded.features, loaded.data)
    except LojalError as exc:
        fail(exc)
    verdict = "[green]IN[/green]" if result.member else "[red]OUT[/red]"
    console.print(f"customer {customer} is {verdict} segment [bold]{name}[/bold] on {loaded.data.run_date.isoformat()}")
    table = Table()
    for column in ("line", "condition", "customer's value", "held"):
        table.add_column(column)
    for step in result.steps:
        held = "[green]yes[/green]" if step.held else "[red]no[/red]"
        table.add_row(f"{result.path}:{step.line}", "  " * step.depth + step.condition, step.value, held)
    console.print(table)
    reason = exclusion_reasons(loaded.data).get(customer)
    if result.member and reason is not None and not pd.isna(reason):
        console.print(f"matches, but will not be mailed: {reason}")
