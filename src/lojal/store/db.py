"""Engine creation and schema initialisation."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event

from lojal.errors import StoreError


def connect(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and foreign keys, and its folder is created."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, future=True)
    except ModuleNotFoundError as exc:  # the driver is an extra
        hint = "pip install 'lojal[postgres]'" if "psycopg" in str(exc) else f"install the driver ({exc.name})"
        raise StoreError(f"no database driver for {url.split(':', 1)[0]}: {hint}") from None
    except Exception as exc:  # bad URL
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
    """A new store is created at the migrations' head; an existing one must be current
    (`lojal db upgrade` otherwise: nothing here changes an existing store's tables)."""
    from lojal.store import migrate

    if migrate.schema_state(engine).kind == "empty":
        migrate.create_at_head(engine)
    migrate.require_current(engine)


def require_schema(engine: Engine) -> None:
    """Raise StoreError (saying what to run) unless the store exists at this Lojal's schema."""
    from lojal.store import migrate

    migrate.require_current(engine)
