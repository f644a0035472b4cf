"""Put a generated sample shop into the store."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from lojal.errors import StoreError
from lojal.sample.shop import SampleShop
from lojal.store import init_schema, schema
from lojal.store.write import clear_shop, count_rows, insert_frame


def write_sample_shop(engine: Engine, shop: SampleShop, *, replace: bool,
                      progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Write all tables in one transaction; refuse to mix with existing data unless `replace`."""
    init_schema(engine)
    with engine.begin() as conn:
        existing = count_rows(conn, schema.customers)
        if existing and not replace:
            raise StoreError(f"the store already has {existing} customers; pass --replace to start over "
                             "(this deletes the store's shop data and send ledger)")
        if replace:
            clear_shop(conn)
        return {
            "customers": insert_frame(conn, schema.customers, shop.customers, progress),
            "products": insert_frame(conn, schema.products, shop.products, progress),
            "orders": insert_frame(conn, schema.orders, shop.orders, progress),
            "order_lines": insert_frame(conn, schema.order_lines, shop.lines, progress),
            "suppressions": insert_frame(conn, schema.suppressions, shop.suppressions, progress),
            "product_prices": insert_frame(conn, schema.product_prices, shop.prices, progress)
            if shop.prices is not None else 0,
            "product_texts": insert_frame(conn, schema.product_texts, shop.texts, progress)
            if shop.texts is not None else 0,
        }
