"""`lojal plan diff D1 D2`: who enters and who leaves each campaign between two dry runs' plans."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Dry runs' plans (`lojal run --dry-run` writes them).", no_args_is_help=True)
console = Console(soft_wrap=True)
ProjectOpt = Annotated[Optional[Path], typer.Option("--project", help="folder with config/, segments/, templates/ (default: current)")]


@app.callback()
def plan() -> None:
    """Dry runs' plans (`lojal run --dry-run` writes them)."""


@app.command("diff")
def diff_command(
    before: Annotated[str, typer.Argument(help="the earlier night, YYYY-MM-DD")],
    after: Annotated[str, typer.Argument(help="the later night, YYYY-MM-DD")],
    project: ProjectOpt = None,
    show: Annotated[int, typer.Option(min=0, help="list at most this many customers per campaign and change")] = 10,
) -> None:
    """Compare two nights' decision logs: per campaign, who enters the selection and who leaves it, and why."""
    from lojal.cli import parse_date
    from lojal.paths import Paths
    from lojal.plans import diff, read_plan

    paths = Paths.resolve(project)
    d1, d2 = parse_date(before, "BEFORE"), parse_date(after, "AFTER")
    result = diff(read_plan(paths, d1), read_plan(paths, d2))
    table = Table(title=f"Plan {d1} -> {d2}", box=box.SIMPLE_HEAD)
    for col in ("campaign", f"selected {d1}", f"selected {d2}", "entered", "left"):
        table.add_column(col, justify="left" if col == "campaign" else "right")
    for campaign, row in result.counts.iterrows():
        table.add_row(str(campaign), *(f"{int(v):,}" for v in row))
    console.print(table)
    for (campaign, change), group in result.changes.groupby(["campaign", "change"], sort=True):
        console.print(f"{campaign}: {len(group):,} {change}", highlight=False)
        for row in group.head(show).itertuples(index=False):
            other = row.before if change == "entered" else row.after
            word = "was" if change == "entered" else "now"
            console.print(f"  customer {row.customer_id} ({word}: {other})", highlight=False, markup=False)
