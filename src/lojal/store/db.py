"""Engine creation and schema initialisation."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event, inspect

from lojal.errors import StoreError
from lojal.store.schema import metadata


def connect(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and foreign keys, and its folder is created."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, future=True)
    except Exception as exc:  # bad URL or missing driver
        raise StoreError(f"cannot use database URL: {exc}; check LOJAL_DATABASE_URL") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def init_schema(engine: Engine) -> None:
    """Create missing tables, then insist that existing ones have every column."""
    metadata.create_all(engine)
    require_schema(engine)


def require_schema(engine: Engine) -> None:
    try:
        tables = set(inspect(engine).get_table_names())
    except Exception as exc:
        raise StoreError(f"cannot reach the database ({engine.url.render_as_string(hide_password=True)}): {exc}") from None
    missing = {t.name for t in metadata.sorted_tables} - tables
    if missing:
        raise StoreError(
            f"the store has no tables {sorted(missing)}: run `lojal sample-data` or `lojal import` first"
        )
    inspector = inspect(engine)
    old = [f"{t.name}.{c.name}" for t in metadata.sorted_tables
           for c in t.columns if c.name not in {col["name"] for col in inspector.get_columns(t.name)}]
    if old:
        fresh = (f"delete the SQLite file {engine.url.database}" if engine.dialect.name == "sqlite"
                 else "point LOJAL_DATABASE_URL at an empty database")
        raise StoreError(
            f"the store was created by an earlier Lojal and lacks columns {old}: {fresh}, then run "
            "`lojal sample-data` or `lojal import` again (schema migrations arrive with the operations work)"
        )
