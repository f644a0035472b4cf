"""`lojal delivery unknown`: messages whose outcome is not known, for an operator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

app = typer.Typer(no_args_is_help=True)
from lojal.console import make_console  # noqa: E402 (reads the width when it prints)
console = make_console()


@app.command()
def unknown(
    project: Annotated[Optional[Path], typer.Option(help="project folder (default: current)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Messages that may or may not have been accepted (`unknown`, or `sending` left by a stopped
    run), oldest first. They are never resent blindly: see docs/delivery.md for what to do."""
    from lojal.ledger import unsettled_rows
    from lojal.paths import Paths
    from lojal.store import connect
    from lojal.store.db import require_schema

    engine = connect(Paths.resolve(project).database_url)
    require_schema(engine)
    rows = [_record(r) for r in unsettled_rows(engine).to_dict("records")]
    if as_json:
        for record in rows:
            print(json.dumps(record, ensure_ascii=False))
        return
    if not rows:
        console.print("No message has an unknown outcome.")
        return
    table = Table(title=f"{len(rows):,} message(s) with an unknown outcome", box=box.SIMPLE_HEAD)
    for col in ("message", "campaign", "customer", "state", "attempts", "attempted (UTC)", "night", "backend", "why"):
        table.add_column(col, no_wrap=col != "why")
    for r in rows:
        table.add_row(r["message_id"], r["campaign_id"], str(r["customer_id"]), r["state"], str(r["attempts"]),
                      (r["attempted_at"] or "")[:19].replace("T", " "), r["night"] or "", r["backend"] or "",
                      r["error"] or "")
    console.print(table)
    console.print("Each is settled by the next run from the Event Webhook's events, or after "
                  "delivery.unknown_settle_hours abandoned as assumed received (docs/delivery.md).")


def _record(row: dict) -> dict:
    import pandas as pd

    def text(value):
        return None if value is None or pd.isna(value) else str(value)

    attempted = row["attempted_at"]
    return {"message_id": row["message_id"], "campaign_id": row["campaign_id"], "customer_id": int(row["customer_id"]),
            "state": row["state"], "attempts": int(row["attempts"]),
            "attempted_at": None if attempted is None or pd.isna(attempted) else pd.Timestamp(attempted).isoformat(),
            "night": text(row["attempt_run_date"])[:10] if text(row["attempt_run_date"]) else None,
            "backend": text(row["backend"]), "error": text(row["error"])}
