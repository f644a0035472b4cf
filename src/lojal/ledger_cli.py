"""`lojal ledger show MESSAGE_ID [--render]`: one message's ledger record, and the e-mail again."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(help="The send ledger: one message's record.", no_args_is_help=True)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
ProjectOpt = Annotated[Optional[Path], typer.Option("--project", help="folder with config/, segments/, templates/ (default: current)")]
_FIELDS = ("message_id", "campaign_id", "customer_id", "occasion_key", "run_date", "state", "variant", "send_at",
           "offer_code", "attempts", "attempt_run_date", "accepted_at", "accepted_on", "backend",
           "provider_message_id", "error")


@app.callback()
def ledger() -> None:
    """The send ledger: one message's record."""


@app.command("show")
def show(
    message_id: Annotated[str, typer.Argument(help="the message id (custom_args lojal_message_id, outbox file name)")],
    project: ProjectOpt = None,
    render: Annotated[bool, typer.Option("--render", help="render the e-mail again from the record")] = False,
    html: Annotated[Optional[Path], typer.Option(help="with --render: write the HTML part to this file")] = None,
) -> None:
    """What a message was made of: state, variant, send time, offer code, file hashes and the recommended
    items with strategy, score and reason. --render re-renders it and says whether it is byte-identical."""
    from lojal.paths import Paths

    paths = Paths.resolve(project)
    if render:
        _render(paths, message_id, html)
        return
    from lojal import ledger as ledger_rows
    from lojal.store import connect

    engine = connect(paths.database_url)
    try:
        record = ledger_rows.record(engine, message_id)
    finally:
        engine.dispose()
    print_record(record)


def print_record(record: dict) -> None:
    for name in _FIELDS:
        value = record.get(name)
        if value is not None:
            console.print(f"{name:<20} {value}", highlight=False, markup=False)
    made = record.get("made_from")
    if not made:
        console.print("made_from            (not recorded: planned before Lojal recorded what sends are made of)")
        return
    console.print(f"template             {made.get('template')}", highlight=False, markup=False)
    console.print(f"campaign config      sha256 {made.get('campaign')}", highlight=False, markup=False)
    for name, digest in made.get("files", {}).items():
        console.print(f"  {digest[:16] if digest else '(missing)':<16}  {name}", highlight=False, markup=False)
    for item in made.get("items", []):
        console.print(f"item {item.get('slot')}: {item.get('sku')} {item.get('title')!r} strategy={item.get('strategy')} "
                      f"score={item.get('score') or 0:.4g} reason={item.get('reason_code')}: {item.get('reason')}",
                      highlight=False, markup=False)


def _render(paths, message_id: str, html_out: Path | None) -> None:
    from lojal.pipeline import rerender

    result = rerender(paths, message_id)
    print_record(result.record)
    if result.message is None:
        err_console.print(f"could not render it again: {result.error}", highlight=False, markup=False)
        raise typer.Exit(1)
    message = result.message
    digest = hashlib.sha256(message.html.encode()).hexdigest()
    console.print(f"subject              {message.subject}", highlight=False, markup=False)
    console.print(f"html sha256          {digest}", highlight=False, markup=False)
    if html_out is not None:
        html_out.write_text(message.html, encoding="utf-8")
        console.print(f"html written to      {html_out}", highlight=False, markup=False)
    if result.changed:
        console.print("changed since it was made (the e-mail may differ): " + ", ".join(result.changed),
                      highlight=False, markup=False)
    else:
        console.print("every file it was made of is unchanged: the e-mail is the one that was sent, byte for byte",
                      highlight=False, markup=False)
    sent = sorted((paths.state / "outbox").glob(f"*/{result.record['campaign_id']}/{message_id}.html"))
    if sent:
        same = sent[-1].read_text(encoding="utf-8") == message.html
        console.print(f"outbox copy          {paths.relative(sent[-1])}: "
                      f"{'byte-identical' if same else 'DIFFERENT'}", highlight=False, markup=False)
