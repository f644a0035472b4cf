"""Whole tables into pandas, fast on PostgreSQL; and a few rows by key.

`read_frame(conn, query)` gives the frame `pandas.read_sql` would give (same columns, dtypes and
values; tests/test_store_read.py compares the two on hostile text). On PostgreSQL it streams the
query out with `COPY (...) TO STDOUT` as CSV and parses it with pyarrow, instead of building a
Python tuple per row (the night's 12 million order lines at 1M customers). Elsewhere (SQLite) it is `pandas.read_sql`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pandas as pd
import pyarrow as pa
from pyarrow import csv
from sqlalchemy import (ARRAY, BigInteger, Boolean, Column, ColumnElement, Connection, Date, DateTime, Engine, Float,
                        Integer, Numeric, Select, String, any_, bindparam)

KEY_CHUNK = 900  # keys per IN list: below SQLite's bound-parameter limit

# Every value quoted but NULL: a NULL (empty, unquoted) and an empty text ("") stay apart.
_COPY = "COPY ({query}) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *, ENCODING 'UTF8')"


def read_frame(conn: Connection, query: Select) -> pd.DataFrame:
    """`pandas.read_sql(query, conn)`, through COPY on PostgreSQL."""
    if conn.dialect.name != "postgresql":
        return pd.read_sql(query, conn)
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})  # IN lists too
    names = [column.name for column in query.selected_columns]
    buffer = io.BytesIO()
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor:
        cursor.execute("SET LOCAL datestyle = 'ISO, YMD'")  # the format pyarrow parses, whatever the server's
        with cursor.copy(_COPY.format(query=str(compiled)), compiled.params or None) as copy:
            for block in copy:
                buffer.write(block)
    if not buffer.tell():  # no rows: read_sql's own empty frame (its dtypes for no values)
        return pd.read_sql(query, conn)
    table = csv.read_csv(
        io.BytesIO(buffer.getbuffer()),
        read_options=csv.ReadOptions(column_names=names, block_size=1 << 24),
        parse_options=csv.ParseOptions(newlines_in_values=True),
        convert_options=csv.ConvertOptions(
            column_types={name: _arrow_type(column.type) for name, column in zip(names, query.selected_columns)},
            true_values=["t"], false_values=["f"], null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=False))
    return _as_read_sql(_one_chunk(table))


def read_frames(engine: Engine, queries: dict[str, Select]) -> dict[str, pd.DataFrame]:
    """`read_frame` of each query, by name, all as of one moment. On PostgreSQL two at a time, each on
    its own connection, the first named (put the largest first) beside the others: the server writing
    one COPY and pyarrow parsing another both run without the GIL, so the two overlap; both
    connections read one snapshot (REPEATABLE READ, the second importing the first's exported
    snapshot), so an import committing meanwhile is seen by none of the reads, not by some. Elsewhere
    one after another on one connection (an in-memory SQLite store is one connection's own)."""
    if engine.dialect.name != "postgresql":
        with engine.connect() as conn:
            return _read(conn, queries, list(queries))
    first, *rest = queries
    with _snapshot_connection(engine) as (conn, snapshot), \
            ThreadPoolExecutor(1, thread_name_prefix="lojal-read") as pool:
        largest = pool.submit(_read_in_snapshot, engine, snapshot, queries, [first])
        frames = _read(conn, queries, rest)
        return {**largest.result(), **frames}


def _read(conn: Connection, queries: dict[str, Select], names: list[str]) -> dict[str, pd.DataFrame]:
    return {name: read_frame(conn, queries[name]) for name in names}


@contextmanager
def _snapshot_connection(engine: Engine) -> Iterator[tuple[Connection, str]]:
    """A REPEATABLE READ transaction on PostgreSQL and its exported snapshot's id."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        yield conn, conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()


def _read_in_snapshot(engine: Engine, snapshot: str, queries: dict[str, Select], names: list[str]) -> dict[str, pd.DataFrame]:
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{_snapshot_id(snapshot)}'")
        return _read(conn, queries, names)


def _snapshot_id(snapshot: str) -> str:
    """PostgreSQL's own id (hex digits and dashes), checked before it goes into SQL text (SET
    TRANSACTION SNAPSHOT takes no parameters)."""
    if not all(ch in "0123456789ABCDEFabcdef-" for ch in snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    return snapshot


def _one_chunk(table: pa.Table) -> pa.Table:
    """Each column as one contiguous array: pyarrow's take (every reindex of the frame later) joins
    a column's chunks again on each call, which made each batch's reindex of the customers slow.
    Kept chunked where a column is too big for one array (2 GiB of text)."""
    try:
        return table.combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowCapacityError):
        return table


def _arrow_type(sql_type) -> pa.DataType:
    if isinstance(sql_type, Boolean):
        return pa.bool_()
    if isinstance(sql_type, Integer):
        return pa.int64()
    if isinstance(sql_type, (Numeric, Float)):  # Float is a Numeric; asdecimal=False columns read as float
        return pa.float64()
    if isinstance(sql_type, DateTime):
        return pa.timestamp("us")
    if isinstance(sql_type, Date):
        return pa.date32()
    return pa.string()


def _as_read_sql(table: pa.Table) -> pd.DataFrame:
    """pandas.read_sql's dtypes: a column with no value at all is objects (None), as it gives."""
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns):
        if len(column) and column.null_count == len(column):
            frame[name] = pd.Series([None] * len(column), index=frame.index, dtype=object)
    return frame


def key_filters(conn: Connection, column: Column, keys: Sequence) -> Iterator[ColumnElement[bool]]:
    """WHERE clauses covering these keys of `column` (text or integer): one `= ANY(array)` on
    PostgreSQL (one statement, whatever the count), else IN lists of KEY_CHUNK keys."""
    keys = list(keys)
    if conn.dialect.name == "postgresql":
        if keys:
            element = String if isinstance(column.type, String) else BigInteger
            yield column == any_(bindparam(f"{column.name}_keys", keys, type_=ARRAY(element)))
        return
    for start in range(0, len(keys), KEY_CHUNK):
        yield column.in_(keys[start:start + KEY_CHUNK])


def by_key(conn: Connection) -> None:
    """Read what follows in this transaction by index: on PostgreSQL the planner chose full scans for
    a batch's sliver of a big table (a thousand keys of a million rows); elsewhere nothing to do."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")


def rows_by_key(conn: Connection, query: Select, column: Column, keys: Sequence) -> pd.DataFrame:
    """`query`'s rows whose `column` is one of `keys`, as `pandas.read_sql` gives them (no rows: its
    columns, no values). For a batch's few rows, where COPY (read_frame) costs more than it saves."""
    frames = [pd.read_sql(query.where(where), conn) for where in key_filters(conn, column, keys)]
    frames = [f for f in frames if len(f)] or frames[:1] or [pd.read_sql(query.where(column.in_([])), conn)]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
