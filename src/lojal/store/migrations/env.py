"""Alembic's environment for the store: the connection comes from `lojal.store.migrate` (which
`lojal db upgrade` and `lojal db revision` use), the target is `lojal.store.schema.metadata`.

SQLite runs every change in batch mode (copy the table, swap it in), so the same migration works on
SQLite and PostgreSQL; types are compared too, so autogenerate sees a changed column type.
"""

from __future__ import annotations

from alembic import context

from lojal.store.schema import metadata


def _configure(**kwargs) -> None:
    context.configure(target_metadata=metadata, compare_type=True, **kwargs)


def run_offline() -> None:
    """`--sql`: print the SQL for a DBA instead of running it."""
    url = context.config.get_main_option("sqlalchemy.url")
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"),
               dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `lojal db upgrade` (it passes the store's connection)")
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
