"""Bulk writes into the store, in chunks, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, func, select

from lojal.store import schema

CHUNK = 5000


def chunked_records(frame: pd.DataFrame) -> Iterator[list[dict]]:
    clean = frame.astype(object).where(frame.notna(), None)
    for start in range(0, len(clean), CHUNK):
        chunk = clean.iloc[start:start + CHUNK]
        yield [{k: _plain(v) for k, v in row.items()} for row in chunk.to_dict("records")]


def _plain(value):
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def insert_frame(conn: Connection, table: Table, frame: pd.DataFrame,
                 progress: Callable[[int], None] | None = None) -> int:
    columns = [c.name for c in table.columns if c.name in frame.columns]
    written = 0
    for batch in chunked_records(frame[columns]):
        conn.execute(table.insert(), batch)
        written += len(batch)
        if progress:
            progress(len(batch))
    return written


def clear_shop(conn: Connection) -> None:
    """Delete every row of every table (children first)."""
    for table in reversed(schema.metadata.sorted_tables):
        conn.execute(delete(table))


def count_rows(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# -- Bulk import writes: the driver's own fast path, inside the caller's transaction ----------------
BULK_CHUNK = 100_000


def _column_values(series: pd.Series, column, dialect: str) -> list:
    """One column as the driver takes it (None for missing): on SQLite in the text form SQLAlchemy
    stores (DateTime 'YYYY-MM-DD HH:MM:SS.ffffff', Date 'YYYY-MM-DD', Boolean 1/0)."""
    kind = type(column.type).__name__
    missing = series.isna().to_numpy()
    if kind == "DateTime":
        stamps = pd.to_datetime(series)
        values = (stamps.dt.strftime("%Y-%m-%d %H:%M:%S.%f").to_numpy(dtype=object) if dialect == "sqlite"
                  else np.array(stamps.dt.to_pydatetime(), dtype=object))
    elif kind == "Date":
        values = np.array([v.isoformat() if dialect == "sqlite" and v is not None and v == v else v
                           for v in series.tolist()], dtype=object)
    elif kind == "Boolean":
        values = series.map(bool).astype(int if dialect == "sqlite" else bool).to_numpy(dtype=object)
    else:
        values = series.to_numpy(dtype=object)
        if values.size and isinstance(values[0], np.generic):
            values = np.array(series.tolist(), dtype=object)
    if missing.any():
        values = values.copy()
        values[missing] = None
    return values.tolist()


def bulk_rows(table: Table, frame: pd.DataFrame, dialect: str) -> Iterator[tuple[list[str], list[tuple]]]:
    columns = [c.name for c in table.columns if c.name in frame.columns]
    for start in range(0, len(frame), BULK_CHUNK):
        part = frame.iloc[start:start + BULK_CHUNK]
        yield columns, list(zip(*(_column_values(part[c], table.c[c], dialect) for c in columns)))


def bulk_insert(conn: Connection, table: Table, frame: pd.DataFrame, key: str | None = None,
                progress: Callable[[int], None] | None = None) -> int:
    """Insert (or, with `key`, upsert) every row of `frame`: COPY on PostgreSQL (through a
    temporary table for upserts), executemany on SQLite; in the connection's transaction."""
    dialect = conn.dialect.name
    raw = conn.connection.driver_connection
    cursor = raw.cursor()
    written = 0
    target = table.name
    if dialect == "postgresql" and key:
        target = f"import_{table.name}"
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {target} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP")
        cursor.execute(f"TRUNCATE {target}")
    if dialect == "sqlite":  # index and foreign-key pages stay in memory (256 MB; restored below)
        cache = cursor.execute("PRAGMA cache_size").fetchone()[0]
        cursor.execute("PRAGMA cache_size = -262144")
    names: list[str] = []
    for names, rows in bulk_rows(table, frame, dialect):
        listed = ", ".join(names)
        if dialect == "postgresql":
            with cursor.copy(f"COPY {target} ({listed}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in names)
            upsert = (f" ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in names if n != key)
                      if key else "")
            cursor.executemany(f"INSERT INTO {target} ({listed}) VALUES ({marks}){upsert}", rows)
        written += len(rows)
        if progress:
            progress(len(rows))
    if dialect == "postgresql" and key and names:
        listed = ", ".join(names)
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != key)
        cursor.execute(f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM {target} "
                       f"ON CONFLICT ({key}) DO UPDATE SET {updates}")
    if dialect == "sqlite":
        cursor.execute(f"PRAGMA cache_size = {int(cache)}")
    return written
