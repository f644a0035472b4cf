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
