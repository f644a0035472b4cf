"""`lojal preview`: look at every e-mail before it goes out.

    lojal preview serve [--port 8025] [--project DIR]   local server, reloads when templates change
    lojal preview --out DIR [--project DIR]             the same pages as static files
    lojal preview --customer ID|EMAIL [--campaign ID] [--date D]   what that real customer gets tonight
                                                        (lojal.proof; writes no ledger row)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lojal.paths import Paths
from lojal.render.preview import PreviewServer, build_site, write_site

app = typer.Typer(help="Preview every campaign x locale x sample customer in a browser.",
                  pretty_exceptions_enable=False)

ProjectOpt = Annotated[Optional[Path], typer.Option("--project", help="folder with config/ and templates/ (default: current)")]


@app.callback(invoke_without_command=True)
def preview(
    ctx: typer.Context,
    out: Annotated[Optional[Path], typer.Option("--out", help="write static preview pages to this folder "
                                                "(with --customer: the customer's e-mails)")] = None,
    project: ProjectOpt = None,
    customer: Annotated[Optional[str], typer.Option("--customer", help="a real customer (id or e-mail): what they "
                                                    "would get tonight, or why nothing")] = None,
    campaign: Annotated[Optional[str], typer.Option("--campaign", help="with --customer: this campaign's decision")] = None,
    run_date: Annotated[Optional[str], typer.Option("--date", help="with --customer: the night YYYY-MM-DD "
                                                    "(default: the next nightly run's)")] = None,
) -> None:
    """Write static previews with --out DIR, run `lojal preview serve`, or see one customer's night
    with --customer ID|EMAIL."""
    if ctx.invoked_subcommand is not None:
        return
    if customer is not None:
        from lojal.cli import parse_date
        from lojal.proof_cli import run_preview_customer

        run_preview_customer(project, customer, campaign, parse_date(run_date), out)
        return
    if campaign is not None or run_date is not None:
        raise typer.BadParameter("--campaign and --date go with --customer ID|EMAIL", param_hint="--customer")
    if out is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    site = build_site(Paths.resolve(project))
    count = write_site(site, out)
    typer.echo(f"Wrote {site.views} previews ({count} files) to {out}/index.html")
    for problem in site.problems:
        typer.echo(str(problem), err=True)
    if site.problems:
        raise typer.Exit(1)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8025,
    project: ProjectOpt = None,
) -> None:
    """Serve previews on http://127.0.0.1:PORT/ and reload the page when a template changes."""
    server = PreviewServer(Paths.resolve(project), port=port)
    typer.echo(f"Previews at {server.url} ({server.site.views} e-mails); watching config/ and templates/. Ctrl+C stops.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")
