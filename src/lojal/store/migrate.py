"""Schema migrations of the store (Alembic), the same on SQLite and PostgreSQL.

The migrations ship inside the package (`lojal/store/migrations/versions/`), so an installed Lojal
can upgrade its store with `lojal db upgrade`. A store is in one of these states:

- empty:   no Lojal table yet; `create_at_head` creates it as `schema.metadata` and records the head
- legacy:  tables created before migrations existed (no `alembic_version`): the baseline revision
- behind:  at an older revision; `upgrade` brings it to the head, every row kept
- current: at the head
- ahead:   at a revision this Lojal does not know (a newer Lojal upgraded it)

Only `upgrade` changes an existing store; every other command refuses a store that is not current
and says to run `lojal db upgrade`.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text

from lojal.errors import StoreError
from lojal.store.schema import metadata

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class SchemaState:
    kind: str  # empty, legacy, behind, current, ahead
    revision: str | None
    head: str

    @property
    def current(self) -> bool:
        return self.kind == "current"


def _config(connection: Connection | None = None, url: str | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts():
    """The package's migration scripts (read once per process: they ship with the code)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    return _scripts().get_current_head()


def _database_revision(conn: Connection) -> str | None:
    row = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    return row[0] if row else None


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def schema_state(engine: Engine) -> SchemaState:
    """Where the store stands against this Lojal's migrations (reads, never writes)."""
    head = head_revision()
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            revision = _database_revision(conn) if VERSION_TABLE in tables else None
    except Exception as exc:
        raise StoreError(f"cannot reach the database ({_where(engine)}): {exc}") from None
    ours = {t.name for t in metadata.sorted_tables}
    if revision is None:
        kind = "legacy" if tables & ours else "empty"
        return SchemaState(kind, BASELINE if kind == "legacy" else None, head)
    if revision == head:
        return SchemaState("current", revision, head)
    known = {script.revision for script in _scripts().walk_revisions()}
    return SchemaState("behind" if revision in known else "ahead", revision, head)


def require_current(engine: Engine) -> None:
    """Raise StoreError unless the store exists and is at this Lojal's head revision."""
    state = schema_state(engine)
    if state.kind == "empty":
        raise StoreError("the store has no tables yet: run `lojal sample-data` or `lojal import` first "
                         f"({_where(engine)})")
    if state.kind == "ahead":
        raise StoreError(f"the store is at schema revision {state.revision}, which this Lojal does not know "
                         f"(its newest is {state.head}): a newer Lojal upgraded it; install that version")
    if not state.current:
        was = ("was created before Lojal had migrations" if state.kind == "legacy"
               else f"is at schema revision {state.revision}")
        raise StoreError(f"the store {was}; this Lojal needs revision {state.head}: run `lojal db upgrade` "
                         "(it changes the tables in place and keeps every row)")


def create_at_head(engine: Engine) -> None:
    """A new store: create the tables of `schema.metadata` and record the head revision.
    (The suite proves the migrations' head is exactly this metadata.)"""
    from alembic import command

    with engine.begin() as conn:
        metadata.create_all(conn)
        command.stamp(_config(conn), "head")


def upgrade(engine: Engine, revision: str = "head") -> tuple[SchemaState, SchemaState]:
    """Bring the store to `revision` in one transaction; returns the states before and after.
    A legacy store is first recorded at the baseline. An empty one is created at the head."""
    before = schema_state(engine)
    if before.kind == "ahead":
        require_current(engine)
    if before.kind == "empty" and revision == "head":
        create_at_head(engine)
        return before, schema_state(engine)
    if before.kind == "legacy":
        _require_baseline_columns(engine)
    with _migration_connection(engine) as conn:
        _run(conn, before, revision)
    return before, schema_state(engine)


def _run(conn: Connection, before: SchemaState, revision: str) -> None:
    from alembic import command

    config = _config(conn)
    if before.kind == "legacy":
        command.stamp(config, BASELINE)
    command.upgrade(config, revision)
    if conn.dialect.name == "sqlite":
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(f"the upgrade would leave {len(broken)} rows pointing at missing rows "
                             f"(first: {broken[0]}); nothing was changed")


class _migration_connection:
    """One transaction around the whole upgrade. SQLite needs foreign keys off while batch mode
    copies tables (set before the transaction begins) and an explicit BEGIN so that its DDL is
    transactional too."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.own: Engine | None = None

    def __enter__(self) -> Connection:
        engine = self.engine
        if engine.dialect.name == "sqlite":
            engine = self.own = create_engine(self.engine.url)
            event.listen(engine, "connect", _sqlite_autocommit_driver)
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        self.context = engine.begin()
        return self.context.__enter__()

    def __exit__(self, *exc):
        try:
            return self.context.__exit__(*exc)
        finally:
            if self.own is not None:
                self.own.dispose()


def _sqlite_autocommit_driver(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None
    dbapi_conn.execute("PRAGMA foreign_keys=OFF")


def _require_baseline_columns(engine: Engine) -> None:
    """A legacy store must have the baseline's tables and columns (any store the released code
    created does). Earlier development stores may lack one; say which, and change nothing."""
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    missing = []
    for table, columns in _baseline_columns().items():
        have = {c["name"] for c in inspector.get_columns(table)} if table in tables else set()
        missing += [f"{table}.{c}" for c in columns if c not in have]
    if missing:
        raise StoreError(f"the store predates the first release of its schema and lacks {missing}; add them "
                         "(ALTER TABLE ... ADD COLUMN, nullable) and run `lojal db upgrade` again; nothing was changed")


def _baseline_columns() -> dict[str, list[str]]:
    """Every table and column of the baseline revision, read from a scratch store built by it."""
    from alembic import command

    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), BASELINE)
            inspector = inspect(conn)
            return {t: [c["name"] for c in inspector.get_columns(t)]
                    for t in inspector.get_table_names() if t != VERSION_TABLE}
    finally:
        engine.dispose()


def pending_sql(url: str, revision: str = "head") -> None:
    """Print the SQL that upgrading a store at the baseline to `revision` runs (for DBAs)."""
    from alembic import command

    command.upgrade(_config(url=url), f"{BASELINE}:{revision}", sql=True)


def new_revision(message: str, autogenerate: bool = True, versions_dir: Path | None = None) -> Path:
    """Write the next migration into the package, from the difference between the migrations'
    head and `schema.metadata` (compared on a scratch SQLite store at the head). Returns its file."""
    from alembic import command

    head = head_revision()
    rev_id = f"{int(head) + 1:04d}" if head and head.isdigit() else None
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'head.db'}")
        try:
            with _migration_connection(engine) as conn:
                command.upgrade(_config(conn), "head")
            with engine.begin() as conn:
                config = _config(conn)
                config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
                if versions_dir is not None:  # elsewhere than the package (tests)
                    config.set_main_option("path_separator", "os")
                    config.set_main_option("version_locations", os.pathsep.join(
                        str(p).replace("%", "%%") for p in (MIGRATIONS / "versions", versions_dir)))
                script = command.revision(config, message=message, autogenerate=autogenerate, rev_id=rev_id,
                                          version_path=str(versions_dir) if versions_dir else None)
        finally:
            engine.dispose()
    return Path(script.path)
