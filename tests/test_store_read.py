"""lojal.store.read.read_frame: on PostgreSQL the COPY path gives exactly pandas.read_sql's frame."""

import threading
import time
from datetime import date, datetime

import pandas as pd
import pytest
from sqlalchemy import func, insert, literal_column, select

from lojal.store import connect, init_schema, schema
from lojal.store.read import read_frame, read_frames

HOSTILE = ["", " ", "plain", 'quote " inside', "comma, and ; semicolon", "line\nbreak", "cr\r\nlf",
           "tab\tand\\backslash", "NULL", "\\N", "ØÆÅ økologisk ☕ 😀", "'single'", '""', ",", "t", "f"]


def _rows():
    customers, orders, lines = [], [], []
    for i, text in enumerate(HOSTILE, start=1):
        customers.append({"customer_id": i, "email": f"c{i}@example.com", "first_name": text, "locale": "nb", "country": "NO", "time_zone": "Europe/Oslo",
                          "birthday": None if i % 2 else date(1980 + i, 1 + i % 12, 1 + i),
                          "created_at": datetime(2026, 1, 1, 12, i, 30, 123456 * (i % 2)),
                          "consent_email": bool(i % 2), "consent_at": None if i % 4 == 0 else datetime(2026, 2, 1),
                          "consent_source": None if i % 3 == 0 else text})
        orders.append({"order_id": 1000 + i, "customer_id": i, "placed_at": datetime(2026, 3, i, 8, 0, 0),
                       "currency": "NOK", "lojal_message_id": None})
        lines.append({"order_id": 1000 + i, "line_no": 1, "sku": f"S{i}", "quantity": i,
                      "unit_price": [9.95, 0.1, 1e6 + 0.0001, 149.0][i % 4]})
    return customers, orders, lines


@pytest.mark.postgres
def test_copy_reads_what_read_sql_reads(postgres_url):
    engine = connect(postgres_url)
    init_schema(engine)
    customers, orders, lines = _rows()
    with engine.begin() as conn:
        conn.execute(insert(schema.products), [{"sku": f"S{i}", "title": t, "category": t, "price": 1.5 * i,
                                                 "currency": "NOK", "image_url": "", "product_url": None,
                                                 "in_stock": i % 2 == 0, "margin": None if i % 2 else 0.25}
                                                for i, t in enumerate(HOSTILE, start=1)])
        conn.execute(insert(schema.customers), customers)
        conn.execute(insert(schema.orders), orders)
        conn.execute(insert(schema.order_lines), lines)
    queries = [select(schema.customers), select(schema.products), select(schema.orders),
               select(schema.order_lines).join(schema.orders).where(schema.orders.c.placed_at < datetime(2026, 3, 9)),
               select(schema.suppressions)]
    with engine.connect() as conn:
        for query in queries:
            expected = pd.read_sql(query, conn)
            got = read_frame(conn, query)
            pd.testing.assert_frame_equal(got, expected, check_exact=True)
        every = {str(i): pd.read_sql(query, conn) for i, query in enumerate(queries)}
    together = read_frames(engine, {str(i): query for i, query in enumerate(queries)})  # two connections at once
    assert set(together) == set(every)
    for name, expected_frame in every.items():
        pd.testing.assert_frame_equal(together[name], expected_frame, check_exact=True)
    engine.dispose()
    assert len(expected) == 0 and len(got) == 0  # an empty table too



@pytest.mark.postgres
def test_the_reads_beside_each_other_see_one_moment_on_postgresql(postgres_url):
    """An order committed while the store is read (after the first reads, before the last) is in none
    of the frames: both connections read the snapshot taken when the read began."""
    engine = connect(postgres_url)
    init_schema(engine)
    customers, orders, _ = _rows()
    with engine.begin() as conn:
        conn.execute(insert(schema.customers), customers)
        conn.execute(insert(schema.orders), orders[:-1])
    count = select(func.count().label("n")).select_from(schema.orders)
    sleep = select(literal_column("1").label("slept")).select_from(func.pg_sleep(1.5))

    def import_meanwhile():
        time.sleep(0.5)
        with engine.begin() as conn:
            conn.execute(insert(schema.orders), orders[-1:])

    importer = threading.Thread(target=import_meanwhile)
    importer.start()
    frames = read_frames(engine, {"beside": count, "asleep": sleep, "after": count})
    importer.join()
    with engine.connect() as conn:
        now = conn.execute(count).scalar_one()
    engine.dispose()
    assert now == len(orders)  # the import did commit during the read
    assert frames["beside"]["n"].tolist() == frames["after"]["n"].tolist() == [len(orders) - 1]

def test_sqlite_is_read_sql(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    init_schema(engine)
    customers, _, _ = _rows()
    with engine.begin() as conn:
        conn.execute(insert(schema.customers), customers)
    with engine.connect() as conn:
        pd.testing.assert_frame_equal(read_frame(conn, select(schema.customers)),
                                      pd.read_sql(select(schema.customers), conn))
    frames = read_frames(engine, {"customers": select(schema.customers), "orders": select(schema.orders)})
    assert len(frames["customers"]) == len(customers) and frames["orders"].empty
    engine.dispose()


def test_a_table_read_in_several_blocks_becomes_one_chunk_per_column():
    # A COPY longer than pyarrow's block size arrives in chunks; taking rows from a chunked text column
    # joins its chunks again on every call (each batch's reindex of the customers).
    import pyarrow as pa

    from lojal.store.read import _as_read_sql, _one_chunk

    chunked = pa.table({"email": pa.chunked_array([["a@x.no", "b@x.no"], ["c@x.no"], [None]]),
                        "n": pa.chunked_array([[1, 2], [3], [4]])})
    table = _one_chunk(chunked)
    assert [column.num_chunks for column in table.columns] == [1, 1]
    assert table.equals(chunked)
    frame = _as_read_sql(table)
    assert frame["email"].tolist()[:3] == ["a@x.no", "b@x.no", "c@x.no"] and frame["n"].tolist() == [1, 2, 3, 4]
