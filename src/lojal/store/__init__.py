"""The shop's data behind SQLAlchemy 2: SQLite by default, PostgreSQL in production."""

from lojal.store.db import connect, init_schema
from lojal.clock import shop_today
from lojal.store.shopdata import ShopData, load_shop_data

__all__ = ["connect", "init_schema", "ShopData", "load_shop_data", "shop_today"]
