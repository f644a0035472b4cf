"""The shop as of a moment: the frames every stage works on.

`ShopData` is what the features, segments, recommendation and planning stages receive. The
store keeps UTC; here every time is the shop's wall-clock time (naive `datetime64[ns]` in the
shop's time zone), so "yesterday" and "14 days ago" are the shop's calendar days. `as_of` is
exclusive (the shop's midnight starting the run date), so a run for a past date sees the world
as it was then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Engine, false, select, true
from sqlalchemy.exc import SQLAlchemyError

from lojal.addresses import suppression_key
from lojal.clock import start_of_day_utc, utc_to_local
from lojal.errors import StoreError
from lojal.markets import Markets, empty_prices, empty_texts
from lojal.store import schema
from lojal.store.db import connect, require_schema
from lojal.store.read import by_key, read_frames, rows_by_key

T = TypeVar("T")

CUSTOMER_COLUMNS = ["email", "first_name", "locale", "country", "market", "time_zone", "birthday",
                    "created_at", "consent_email", "consent_at", "consent_source"]
PRODUCT_COLUMNS = ["title", "category", "price", "currency", "image_url", "product_url", "in_stock", "margin"]
# total: in the shop's currency (brand.currency; other currencies at their market's rate), for spend
# features; paid_total: what the customer paid, in the order's currency.
ORDER_COLUMNS = ["order_id", "customer_id", "placed_at", "currency", "total", "paid_total"]
LINE_COLUMNS = ["order_id", "line_no", "customer_id", "placed_at", "sku", "category",
                "quantity", "unit_price", "amount"]


@dataclass
class ShopData:
    """customers (index customer_id), products (index sku), orders, lines (one row per order line)."""

    as_of: pd.Timestamp
    customers: pd.DataFrame
    products: pd.DataFrame
    orders: pd.DataFrame
    lines: pd.DataFrame
    suppressed_emails: frozenset[str] = frozenset()  # mailbox keys (lojal.addresses.suppression_key)
    timezone: str = "UTC"
    prices: pd.DataFrame = field(default_factory=empty_prices)  # sku, market, currency, price
    texts: pd.DataFrame = field(default_factory=empty_texts)    # sku, locale, title, category
    markets: Markets | None = None

    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def run_date(self) -> date:
        return self.as_of.date()

    def derived(self, name: str, build: Callable[[], T]) -> T:
        """What `build()` derives from this data, computed on first use and kept with it (a night's
        data does not change once loaded; a copy made with dataclasses.replace starts afresh)."""
        if name not in self._memo:
            self._memo[name] = build()
        return self._memo[name]

    def order_lookup(self) -> "OrderLookup":
        """Orders and their lines by order id (then each batch of a night finds its customers'
        last orders without scanning every order line again)."""
        return self.derived("order_lookup", lambda: OrderLookup.build(self.orders, self.lines))

    @classmethod
    def from_frames(cls, as_of: date | datetime, customers: pd.DataFrame, products: pd.DataFrame,
                    orders: pd.DataFrame, lines: pd.DataFrame,
                    suppressed_emails: frozenset[str] = frozenset(), timezone: str = "UTC",
                    markets: Markets | None = None, prices: pd.DataFrame | None = None,
                    texts: pd.DataFrame | None = None) -> "ShopData":
        """Normalise raw frames (orders: order_id, customer_id, placed_at, currency; lines: order_id,
        line_no, sku, quantity, unit_price; times in UTC), move times to the shop's `timezone` and
        cut them at the start of `as_of` there. Each customer gets the `market` of their country
        (`markets`; without it every customer is in the one market 'default')."""
        cutoff = start_of(as_of)
        customers = customers.copy()
        if "customer_id" in customers.columns:
            customers = customers.set_index("customer_id")
        for col in ("created_at", "consent_at"):
            customers[col] = utc_to_local(customers[col], timezone)
        customers["birthday"] = pd.to_datetime(customers["birthday"]).astype("datetime64[ns]")
        customers["consent_email"] = customers["consent_email"].astype(bool)
        customers["market"] = (markets.assign(customers["country"]) if markets is not None
                               else pd.Series("default", index=customers.index, dtype=object))
        customers = customers[customers["created_at"] < cutoff]

        products = products.copy()
        if "sku" in products.columns:
            products = products.set_index("sku")
        products["in_stock"] = products["in_stock"].astype(bool)
        products["price"] = products["price"].astype(float)
        products["margin"] = (pd.to_numeric(products["margin"], errors="coerce") if "margin" in products.columns
                              else float("nan"))

        orders, lines = _orders_and_lines(orders, lines, products["category"], cutoff, timezone, markets)
        return cls(cutoff, customers[CUSTOMER_COLUMNS], products[PRODUCT_COLUMNS],
                   orders[ORDER_COLUMNS], lines[LINE_COLUMNS],
                   frozenset(suppression_key(e) for e in suppressed_emails), timezone,
                   prices if prices is not None else empty_prices(), texts if texts is not None else empty_texts(),
                   markets)


def _orders_and_lines(orders: pd.DataFrame, lines: pd.DataFrame, category: pd.Series, cutoff: pd.Timestamp,
                      timezone: str, markets: Markets | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders placed before `cutoff` (shop time) sorted by (placed_at, order_id); their lines sorted
    by (placed_at, order_id, line_no), each with its order's customer, time, the product's category
    and its amount in the shop's currency; each order's paid_total and total (its lines summed in
    line_no order, whatever order the store returned them in). Lines find their
    order by its position among the sorted orders (one integer per line), so the sort, the sums
    and the joins are array operations, not pandas merges and group-bys over 12M lines."""
    orders = orders.copy()
    orders["placed_at"] = utc_to_local(orders["placed_at"], timezone)
    orders = orders[(orders["placed_at"] < cutoff).to_numpy()]
    placed = orders["placed_at"].to_numpy().astype(np.int64)
    orders = orders.take(np.lexsort((orders["order_id"].to_numpy(), placed))).reset_index(drop=True)
    position = pd.Index(orders["order_id"].to_numpy()).get_indexer(lines["order_id"].to_numpy())  # -1: not kept
    kept = np.flatnonzero(position >= 0)
    kept = kept[np.lexsort((lines["line_no"].to_numpy()[kept], position[kept]))]  # stable, as sort_values was
    position = position[kept]
    paid = (lines["quantity"] * lines["unit_price"]).to_numpy(dtype=float)[kept]
    amount = paid * _rates(orders["currency"], markets)[position]
    # each order's lines summed in line_no order: totals do not depend on the order the store returns rows in
    orders["paid_total"], orders["total"] = _sums(position, len(orders), paid, amount)
    lines = lines.take(kept).reset_index(drop=True)
    lines["customer_id"] = orders["customer_id"].to_numpy()[position]
    lines["placed_at"] = orders["placed_at"].to_numpy()[position]
    lines["category"] = _lookup(category, lines["sku"])
    lines["amount"] = amount
    return orders, lines


def _lookup(values: pd.Series, keys: pd.Series) -> np.ndarray:
    """`values.reindex(keys).to_numpy()` (NaN where a key is not in values' index), hashing each
    distinct key once instead of every row's (12M SKU strings)."""
    codes, distinct = pd.factorize(keys)
    found = values.reindex(distinct).to_numpy(dtype=object)
    return np.append(found, np.nan)[np.where(codes < 0, len(found), codes)]


def _rates(currencies: pd.Series, markets: Markets | None) -> np.ndarray:
    """Per order: the value of one unit of its currency in the shop's (1.0 where no market names it)."""
    rates = markets.rates() if markets is not None else {}
    codes, distinct = pd.factorize(currencies)
    per_currency = np.array([float(rates.get(c, 1.0)) for c in distinct] + [1.0])
    return per_currency[np.where(codes < 0, len(distinct), codes)]


def _sums(position: np.ndarray, n: int, *values: np.ndarray) -> list[np.ndarray]:
    """Sums of each of `values` per order position (0 for an order without lines; a missing value
    counts as 0), as pandas' group-by sums them (compensated), so totals are the same to the last bit."""
    groups = pd.Categorical.from_codes(position, categories=pd.RangeIndex(n))  # codes as they are: no hashing
    sums = pd.DataFrame(dict(enumerate(values))).groupby(groups, observed=False).sum()
    return [sums[i].to_numpy(dtype=float) for i in range(len(values))]


def start_of(day: date | datetime) -> pd.Timestamp:
    if isinstance(day, datetime):
        return pd.Timestamp(day)
    return pd.Timestamp(datetime.combine(day, time.min))


def catalogue_names(url: str) -> tuple[list[str], list[str]] | None:
    """(categories, SKUs) of the store's products, or None where there is no store to ask yet
    (a SQLite file not created, a server not reachable, no tables, no products)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    engine = connect(url)
    try:
        require_schema(engine)
        with engine.connect() as conn:
            rows = conn.execute(select(schema.products.c.category, schema.products.c.sku)).all()
    except (StoreError, SQLAlchemyError):
        return None
    finally:
        engine.dispose()
    if not rows:
        return None
    return sorted({category for category, _ in rows}), [sku for _, sku in rows]


def load_shop_data(engine: Engine, as_of: date | datetime, timezone: str = "UTC",
                   markets: Markets | None = None, catalogue_only: bool = False) -> ShopData:
    """Read the store as it was at the start of `as_of` in the shop's `timezone`; customers are
    put in their country's market of `markets` (config/markets.yaml). `catalogue_only`: products,
    prices and texts alone, no customer, order or suppression (what a worker rendering recorded
    ledger rows keeps for the night; each batch reads its own customers with `load_shop_part`)."""
    require_schema(engine)
    cutoff = start_of_day_utc(start_of(as_of), timezone)
    wanted = false() if catalogue_only else true()
    frames = read_frames(engine, {  # the order lines first: read beside the rest (read_frames)
        # every line: those of orders at or after the cutoff go with their orders (from_frames), so
        # PostgreSQL streams the table without joining it to the orders
        "lines": select(schema.order_lines).where(wanted),
        "customers": select(schema.customers).where(wanted),
        "products": select(schema.products),
        "orders": select(schema.orders).where(schema.orders.c.placed_at < cutoff, wanted),
        "suppressed": select(schema.suppressions.c.email).where(wanted),
        "prices": select(schema.product_prices),
        "texts": select(schema.product_texts)})
    customers, products, orders, lines, suppressed, prices, texts = (frames[name] for name in (
        "customers", "products", "orders", "lines", "suppressed", "prices", "texts"))
    emails = frozenset(suppressed["email"])
    return ShopData.from_frames(as_of, customers, products, orders, lines, emails, timezone, markets, prices, texts)


def load_shop_part(engine: Engine, catalogue: ShopData, customer_ids, order_ids) -> ShopData:
    """These customers and these orders (each with all its lines) as `load_shop_data` would give
    them, with the products, prices, texts and markets of `catalogue` (`load_shop_data(...,
    catalogue_only=True)`): a batch's
    share of the shop, read by primary key instead of reading the whole shop."""
    cutoff = start_of_day_utc(start_of(catalogue.run_date), catalogue.timezone)
    customer_ids, order_ids = sorted({int(i) for i in customer_ids}), sorted({int(i) for i in order_ids})
    orders = schema.orders
    with engine.begin() as conn:
        by_key(conn)
        customers = rows_by_key(conn, select(schema.customers), schema.customers.c.customer_id, customer_ids)
        heads = rows_by_key(conn, select(orders).where(orders.c.placed_at < cutoff), orders.c.order_id, order_ids)
        lines = rows_by_key(conn, select(schema.order_lines), schema.order_lines.c.order_id, order_ids)
    return ShopData.from_frames(catalogue.run_date, customers, catalogue.products, heads, lines, frozenset(),
                                catalogue.timezone, catalogue.markets, catalogue.prices, catalogue.texts)


@dataclass(frozen=True)
class OrderLookup:
    """`orders` indexed by order_id, `lines` sorted by order_id (stable: each order's lines keep
    their order) with where each order's lines start."""
    orders: pd.DataFrame
    lines: pd.DataFrame
    line_order_ids: np.ndarray

    @classmethod
    def build(cls, orders: pd.DataFrame, lines: pd.DataFrame) -> "OrderLookup":
        heads = orders.drop_duplicates("order_id").set_index("order_id")
        by_order = lines.sort_values("order_id", kind="stable").reset_index(drop=True)
        return cls(heads, by_order, by_order["order_id"].to_numpy())

    def heads(self, order_ids: np.ndarray) -> pd.DataFrame:
        """The orders' rows, in the order given (every id must exist)."""
        return self.orders.loc[order_ids]

    def lines_of(self, order_ids: np.ndarray) -> pd.DataFrame:
        """Every line of these orders, grouped by order in the order given."""
        keys = np.asarray(order_ids, dtype=self.line_order_ids.dtype)
        starts = np.searchsorted(self.line_order_ids, keys, side="left")
        ends = np.searchsorted(self.line_order_ids, keys, side="right")
        counts = ends - starts
        if not counts.sum():
            return self.lines.iloc[:0]
        positions = np.repeat(ends - counts.cumsum(), counts) + np.arange(counts.sum())
        return self.lines.iloc[positions]
