"""Tiny hand-made shops for the recommendation tests."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from lojal.store.shopdata import ShopData

AS_OF = date(2024, 6, 1)


def product(sku: str, category: str = "Tea", price: float = 10.0, in_stock: bool = True,
            image: bool = True, title: str | None = None) -> dict:
    return {"sku": sku, "title": title or f"Title {sku}", "category": category, "price": price, "currency": "NOK",
            "image_url": f"https://shop.example/{sku}.jpg" if image else "",
            "product_url": f"https://shop.example/p/{sku}", "in_stock": in_stock}


def build_shop(products: list[dict], purchases: list[tuple[int, str, str]], as_of: date = AS_OF,
               extra_customers: tuple[int, ...] = ()) -> ShopData:
    """`purchases`: (customer_id, sku, "YYYY-MM-DD"), one order per (customer, day)."""
    frame = pd.DataFrame(purchases, columns=["customer_id", "sku", "day"])
    frame["placed_at"] = pd.to_datetime(frame["day"]) + pd.Timedelta(hours=12)
    orders = frame.drop_duplicates(["customer_id", "day"])[["customer_id", "placed_at"]].reset_index(drop=True)
    orders["order_id"] = range(1, len(orders) + 1)
    orders["currency"] = "NOK"
    lines = frame.merge(orders, on=["customer_id", "placed_at"])[["order_id", "sku"]]
    lines["line_no"] = lines.groupby("order_id").cumcount() + 1
    lines["quantity"] = 1
    catalogue = pd.DataFrame(products)
    lines["unit_price"] = lines["sku"].map(catalogue.set_index("sku")["price"]).fillna(10.0)
    ids = sorted(set(frame["customer_id"]) | set(extra_customers))
    customers = pd.DataFrame({
        "customer_id": ids, "email": [f"c{i}@example.com" for i in ids], "first_name": "Kari", "locale": "en",
        "country": "NO", "time_zone": "Europe/Oslo", "birthday": pd.NaT, "created_at": pd.Timestamp("2020-01-01"),
        "consent_email": True, "consent_at": pd.Timestamp("2020-01-01"), "consent_source": "checkout"})
    return ShopData.from_frames(as_of, customers, catalogue, orders, lines)


@pytest.fixture(name="build_shop")
def build_shop_fixture():
    return build_shop


@pytest.fixture(name="product")
def product_fixture():
    return product
