"""`lojal preview`: look at every e-mail before it goes out.

    lojal preview serve [--port 8025] [--project DIR]   local server, reloads when templates change
    lojal preview --out DIR [--project DIR]             the same pages as static files
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
    out: Annotated[Optional[Path], typer.Option("--out", help="write static preview pages to this folder")] = None,
    project: ProjectOpt = None,
) -> None:
    """Write static previews with --out DIR, or run `lojal preview serve`."""
    if ctx.invoked_subcommand is not None:
        return
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
