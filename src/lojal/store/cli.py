"""`lojal db`: the store's schema revision, upgrades, and new migrations for developers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(no_args_is_help=True)
from lojal.console import make_console  # noqa: E402 (reads the width when it prints)
console = make_console()

ProjectOpt = Annotated[Optional[Path], typer.Option("--project", help="folder with config/ (default: current)")]


def _engine(project: Path | None):
    from lojal.paths import Paths
    from lojal.store import connect

    return connect(Paths.resolve(project).database_url)


def _describe(state) -> str:
    if state.kind == "empty":
        return "empty (no Lojal tables yet)"
    if state.kind == "legacy":
        return f"{state.revision} (created before migrations)"
    return f"{state.revision}"


@app.command()
def upgrade(
    project: ProjectOpt = None,
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
    sql: Annotated[bool, typer.Option("--sql", help="print the SQL from the baseline instead of running it")] = False,
) -> None:
    """Upgrade the store's tables to this Lojal, in place and in one transaction; every row is kept."""
    from lojal.store import migrate

    engine = _engine(project)
    if sql:
        migrate.pending_sql(engine.url.render_as_string(hide_password=False), revision)
        return
    before, after = migrate.upgrade(engine, revision)
    where = engine.url.render_as_string(hide_password=True)
    if before.revision == after.revision and before.kind == after.kind:
        console.print(f"The store is already at {after.revision} ({where}).", highlight=False)
    else:
        console.print(f"Store upgraded: {_describe(before)} -> {after.revision} ({where}).", highlight=False)


@app.command()
def current(project: ProjectOpt = None) -> None:
    """Show the store's schema revision and whether it needs `lojal db upgrade`."""
    from lojal.store import migrate

    state = migrate.schema_state(_engine(project))
    advice = {"current": "current", "empty": "created by `lojal sample-data` or `lojal import`",
              "ahead": "upgraded by a newer Lojal"}.get(state.kind, f"run `lojal db upgrade` to reach {state.head}")
    console.print(f"Store schema: {'at ' if state.revision else ''}{_describe(state)} ({advice})", highlight=False)


@app.command()
def revision(
    message: Annotated[str, typer.Option("-m", "--message", help="what changes, e.g. 'add events table'")],
    empty: Annotated[bool, typer.Option("--empty", help="an empty migration to fill in by hand")] = False,
) -> None:
    """Developers: write the next migration from the difference between schema.py and the head."""
    from lojal.store import migrate

    path = migrate.new_revision(message, autogenerate=not empty)
    console.print(f"Wrote {path}: read it, make it keep every row, and run the tests.", highlight=False)
