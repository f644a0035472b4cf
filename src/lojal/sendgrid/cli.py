"""CLI: `lojal sendgrid-local` (the strict local SendGrid) and `lojal webhook serve` (the Event Webhook).

    lojal sendgrid-local --port 3025 [--api-key KEY] [--webhook-url URL] [--rate-limit N [--rate-limit-every S --rate-limit-for S]]
                         [--error-rate P] [--latency-ms MS] [--drop-rate P] [--event-rates k=v,...]
    lojal webhook serve --port 3026 [--project DIR] [--insecure-no-verify]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

webhook_app = typer.Typer(help="SendGrid's signed Event Webhook receiver.", no_args_is_help=True,
                          pretty_exceptions_enable=False)


def register(app: typer.Typer) -> None:
    app.command("sendgrid-local")(sendgrid_local)
    app.add_typer(webhook_app, name="webhook", help="Receive SendGrid's signed Event Webhook.")


def sendgrid_local(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0: any free port)")] = 3025,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    api_key: Annotated[Optional[str], typer.Option("--api-key", help="the only Bearer key accepted (default: any)")] = None,
    webhook_url: Annotated[Optional[str], typer.Option("--webhook-url", help="post signed Event Webhook batches here")] = None,
    rate_limit: Annotated[int, typer.Option("--rate-limit", help="requests per second before 429 (0: none)")] = 0,
    rate_limit_every: Annotated[float, typer.Option("--rate-limit-every", help=(
        "seconds; with it the rate limit holds only in the first --rate-limit-for seconds of each period"))] = 0.0,
    rate_limit_for: Annotated[float, typer.Option("--rate-limit-for", help="see --rate-limit-every")] = 1.0,
    error_rate: Annotated[float, typer.Option("--error-rate", help="share of requests answered 500")] = 0.0,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="mean added latency per request")] = 0.0,
    drop_rate: Annotated[float, typer.Option("--drop-rate", help="share of connections dropped after the body was read")] = 0.0,
    drop_accepted_share: Annotated[float, typer.Option("--drop-accepted-share", help="of dropped requests, the share accepted anyway")] = 0.5,
    event_rates: Annotated[str, typer.Option("--event-rates", help="e.g. delivered=0.9,open=0.5,machine_open=0.2")] = "",
    batch_size: Annotated[int, typer.Option("--webhook-batch-size", help="events per webhook post")] = 500,
    keep_bodies: Annotated[bool, typer.Option("--keep-bodies/--no-keep-bodies", help="keep accepted bodies in memory")] = False,
    public_key_out: Annotated[Optional[Path], typer.Option("--public-key-out", help="also write the webhook verification key to this file")] = None,
    seed: Annotated[Optional[int], typer.Option(help="seed for faults and events")] = None,
) -> None:
    """The strict local SendGrid: v3 Mail Send with SendGrid's rules, faults on demand, signed events."""
    from lojal.sendgrid.local import LocalOptions, parse_event_rates, serve

    for name, value in (("--error-rate", error_rate), ("--drop-rate", drop_rate),
                        ("--drop-accepted-share", drop_accepted_share)):
        if not 0 <= value <= 1:
            raise typer.BadParameter(f"{name} is a share between 0 and 1, not {value}")
    try:
        rates = parse_event_rates(event_rates)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    options = LocalOptions(api_key=api_key, rate_limit=rate_limit, rate_limit_every=rate_limit_every,
                           rate_limit_for=rate_limit_for, error_rate=error_rate, latency_ms=latency_ms,
                           drop_rate=drop_rate, drop_accepted_share=drop_accepted_share, webhook_url=webhook_url,
                           event_rates=rates, webhook_batch_size=batch_size, keep_bodies=keep_bodies, seed=seed)

    def announce(server) -> None:
        if public_key_out:
            public_key_out.write_text(server.public_key + "\n", encoding="utf-8")
        typer.echo(f"local SendGrid listening on {server.url} (Mail Send: POST {server.url}/v3/mail/send; "
                   f"stats: GET {server.url}/_local/stats)")
        typer.echo(f"Event Webhook verification key: {server.public_key}")
        typer.echo(f"events to: {webhook_url}" if webhook_url else "events: off (no --webhook-url)", nl=True)

    serve(options, host, port, announce)


@webhook_app.command("serve")
def webhook_serve(
    port: Annotated[int, typer.Option(help="port to listen on")] = 3026,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    project: Annotated[Optional[Path], typer.Option("--project", help="folder with config/ (default: current)")] = None,
    insecure_no_verify: Annotated[bool, typer.Option(
        "--insecure-no-verify", help="DEVELOPMENT ONLY: accept unsigned posts")] = False,
) -> None:
    """Receive SendGrid's Event Webhook at /sendgrid/events: verify, store durably, then answer 2xx.
    Prints one line per stored batch."""
    import uvicorn

    from lojal.sendgrid.app import app_for_project

    import time

    app = app_for_project(project, verify=not insecure_no_verify,
                          report=lambda line: typer.echo(f"{time.strftime('%H:%M:%S')} {line}"))
    if insecure_no_verify:
        typer.echo("WARNING: signature verification is OFF (--insecure-no-verify): development only", err=True)
    typer.echo(f"Event Webhook receiver on http://{host}:{port}/sendgrid/events")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
