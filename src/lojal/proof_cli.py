"""The command-line side of lojal.proof: `lojal preview --customer` output and `lojal send-test`.
Only typer is imported at the top (`lojal --help` stays fast)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer


def _when(decision) -> str:
    local = decision.send_at_local
    if local is None:
        return "-"
    return f"{local:%Y-%m-%d %H:%M} {decision.zone} ({decision.send_at:%Y-%m-%d %H:%M} UTC)"


def _money(value, currency) -> str:
    try:
        return f"{float(value):,.2f} {currency or ''}".strip()
    except (TypeError, ValueError):
        return ""


def preview_lines(result) -> list[str]:
    """`lojal preview --customer` as plain lines (the tests read them too)."""
    from lojal.proof import NOT_IN_SEGMENT

    c = result.customer
    planned = result.planned_at.strftime("%Y-%m-%d %H:%M")
    lines = [f"Customer {result.customer_id} {c['first_name'] or ''} <{c['email']}>: locale {c['locale']}, "
             f"market {c['market']}, time zone {c['time_zone']}",
             f"Night {result.run_date}, planned as the nightly run plans it at {planned} UTC "
             "(config/schedule.yaml); nothing is written to the ledger.", "", "Campaigns, highest priority first:"]
    width = max(len(d.campaign_id) for d in result.decisions) if result.decisions else 8
    for d in result.decisions:
        word = d.decision.replace("_", " ")
        tail = d.why if d.decision == NOT_IN_SEGMENT else (f"{word}: {d.why}" if d.why else word)
        extra = f" [{d.ledger}]" if d.ledger else ""
        lines.append(f"  {d.campaign_id:<{width}}  {d.priority:>4}  {tail}{extra}")
    lines.append("")
    if not result.shown:
        lines.append("They get nothing tonight: " + _nothing(result))
    for d in result.shown:
        if d.campaign_id in result.failures:
            lines += [f"{d.campaign_id} ({d.campaign_name}): selected, but its e-mail cannot be rendered for them "
                      f"(the nightly run would fail it): {result.failures[d.campaign_id]}"]
            continue
        lines += _detail(d, result.proofs.get(d.campaign_id), result.files.get(d.campaign_id, []))
    return lines


def _nothing(result) -> str:
    matched = [d for d in result.decisions if d.decision != "not_in_segment"]
    if not matched:
        return "they are in no enabled campaign's segment tonight."
    return "; ".join(f"{d.campaign_id}: {d.why}" for d in matched) + "."


def _detail(d, proof, files: list[Path]) -> list[str]:
    if not d.selected:
        return [f"{d.campaign_id} ({d.campaign_name}): they get nothing from it tonight: {d.why}.",
                f"  (`lojal send-test --campaign {d.campaign_id} --customer ID --to YOU` renders it for them anyway.)"]
    lines = [f"{d.campaign_id} ({d.campaign_name}): selected",
             f"  subject:   {proof.subject}", f"  preheader: {proof.preheader}",
             f"  send at:   {_when(d)}", f"  variant:   {d.variant or '-'} (template {proof.template}{_subject_note(proof)})",
             f"  offer:     {d.offer_code or '-'}", f"  occasion:  {d.occasion_key}"]
    if d.ledger:
        lines.append(f"  ledger:    {d.ledger}")
    lines.append("  products:")
    for i, item in enumerate(proof.recommendations, 1):
        lines.append(f"    {i}. {item.get('title')} ({item.get('sku')}) {_money(item.get('price'), item.get('currency'))}"
                     f" - {item.get('reason') or item.get('reason_code')}")
    if not proof.recommendations:
        lines.append("    (none)")
    for path in files:
        lines.append(f"  {'e-mail:' if path.suffix == '.html' else 'text:':<10} {path}")
    return lines


def _subject_note(proof) -> str:
    if not proof.subject_key:
        return ""
    return f"; subject from its string '{proof.subject_key}'"


@contextmanager
def _status(enabled: bool):
    """A spinner naming the current step (loading shop data, computing features, ...) on a terminal."""
    if not enabled:
        yield lambda _: None
        return
    from lojal.cli import err_console

    with err_console.status("preparing the night") as status:
        yield lambda step: status.update(step)


def run_preview_customer(project: Path | None, customer: str, campaign: str | None, run_date, out: Path | None) -> None:
    from lojal.cli import show_progress
    from lojal.paths import Paths
    from lojal.proof import preview_customer

    with _status(show_progress()) as progress:
        result = preview_customer(Paths.resolve(project), customer, campaign, run_date, out, progress)
    for line in preview_lines(result):
        typer.echo(line)
    if result.failures:
        raise typer.Exit(1)


def send_test_command(
    campaign: Annotated[str, typer.Option("--campaign", help="the campaign id (config/campaigns.yaml)")],
    to: Annotated[str, typer.Option("--to", help="who gets the proof: ADDRESS[,ADDRESS...]")],
    customer: Annotated[Optional[str], typer.Option(
        "--customer", help="render for this customer (id or e-mail); default: a built-in sample customer")] = None,
    run_date: Annotated[Optional[str], typer.Option(
        "--date", help="the night YYYY-MM-DD (default: the next nightly run's)")] = None,
    delivery: Annotated[Optional[str], typer.Option(
        help="outbox or sendgrid: overrides delivery.backend in config/sender.yaml")] = None,
    project: Annotated[Optional[Path], typer.Option(
        "--project", help="folder with config/, segments/, templates/ (default: current)")] = None,
) -> None:
    """Send a proof of a campaign to the team, marked as a test ([TEST] subject, category lojal-test,
    custom arg lojal_test=1); never recorded in the send ledger, never counted in caps."""
    from lojal.cli import console, parse_date, show_progress
    from lojal.paths import Paths
    from lojal.proof import send_test

    with _status(show_progress()) as progress:
        result = send_test(Paths.resolve(project), campaign, to, customer, parse_date(run_date), delivery, progress)
    who = f"customer {result.proof.customer['id']}" if customer else f"sample customer {result.proof.customer['id']}"
    console.print(f"Proof of {campaign} for {who} ({result.proof.locale}): {result.proof.subject!r}",
                  markup=False, highlight=False)
    failed = 0
    for message_result in result.results:
        ok = message_result.outcome == "sent"
        failed += not ok
        detail = message_result.provider_id if ok else f"{message_result.outcome}: {message_result.error}"
        console.print(f"  {message_result.message_id}: {message_result.outcome} via {result.backend} ({detail})",
                      markup=False, highlight=False)
    if result.folder is not None:
        console.print(f"Open {result.folder / 'index.html'}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)
