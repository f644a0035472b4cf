"""orders.lojal_message_id: imported from the shop's order file when it has the column, and
attribution by that message id before the last click."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from lojal.errors import DataImportError
from lojal.store import schema
from lojal.store.importer import import_file
from lojal.tracking.report import gather

from lojal.store import connect
from lojal.store.db import init_schema
from tracking.test_report import NIGHT, fill


@pytest.fixture
def store(database_url):
    """One night of sends, events and orders (tracking/test_report.py), on SQLite and PostgreSQL."""
    engine = connect(database_url)
    init_schema(engine)
    fill(engine)
    yield engine
    engine.dispose()

HEADER = "order_id,customer_id,placed_at,sku,quantity,unit_price,currency,lojal_message_id\n"


def test_orders_carrying_the_message_id_are_attributed_by_it(store, tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text(HEADER
                      + "200,6,2026-11-21T12:00:00,P1,2,199.90,NOK,m6\n"  # opened only, never clicked
                      + "201,7,2026-11-21T12:00:00,P1,1,199.90,NOK,https://nordlys.example/p/1?utm_source=lojal&lojal_mid=m7\n"
                      + "202,8,2026-11-21T12:00:00,P1,1,199.90,NOK,m1\n"  # another customer's e-mail: not credited
                      + "203,9,2026-11-21T12:00:00,P1,1,199.90,NOK,\n", encoding="utf-8")
    assert import_file(store, "orders", orders)["orders"] == 4
    with store.connect() as conn:
        stored = dict(conn.execute(select(schema.orders.c.order_id, schema.orders.c.lojal_message_id)
                                   .where(schema.orders.c.order_id >= 200)).all())
    assert stored == {200: "m6", 201: "m7", 202: "m1", 203: None}
    (campaign,) = gather(store, NIGHT, NIGHT, "NOK", window_days=5, min_sample=10).campaigns
    assert campaign.conversions == 5 + 2  # the five clickers, and 6 and 7 by their link
    assert campaign.revenue == Decimal("199.90") * (8 + 2 + 1)


def test_a_bad_message_id_names_file_line_and_column_and_nothing_is_written(store, tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text(HEADER + "300,6,2026-11-21T12:00:00,P1,1,199.90,NOK,m6\n"
                      + "301,7,2026-11-21T12:00:00,P1,1,199.90,NOK,not a message id!\n", encoding="utf-8")
    with pytest.raises(DataImportError) as caught:
        import_file(store, "orders", orders)
    [problem] = caught.value.problems
    assert problem.line == 3 and "lojal_message_id" in str(problem) and "lojal_mid" in problem.message
    with store.connect() as conn:
        assert conn.execute(select(schema.orders.c.order_id).where(schema.orders.c.order_id >= 300)).all() == []
