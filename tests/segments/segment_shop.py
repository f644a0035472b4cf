"""Small hand-made shops for the segment and feature tests (real ShopData, no mocks)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from lojal.config import Loyalty, Tier
from lojal.store.shopdata import ShopData

LOYALTY = Loyalty(tiers=[Tier(name="Bronze", min_spend_12m=0), Tier(name="Silver", min_spend_12m=3000),
                         Tier(name="Gold", min_spend_12m=8000)])
PRODUCTS = pd.DataFrame({
    "sku": ["COF-1", "COF-2", "TEA-1", "MUG-1"],
    "title": ["Dark roast", "Light roast", "Green tea", "Mug"],
    "category": ["Coffee", "Coffee", "Tea", "Kitchen"],
    "price": [100.0, 120.0, 80.0, 150.0],
    "currency": "NOK", "image_url": None, "product_url": None, "in_stock": True,
})


def customer(customer_id: int, *, birthday: str | None = None, created_at: str = "2020-01-01",
             consent: bool = True, locale: str = "nb", country: str = "NO") -> dict:
    return {"customer_id": customer_id, "email": f"c{customer_id}@example.com", "first_name": f"C{customer_id}",
            "locale": locale, "country": country, "time_zone": "Europe/Oslo", "birthday": birthday,
            "created_at": created_at, "consent_email": consent, "consent_at": None, "consent_source": None}


def shop(run_date: date, customers: list[dict], orders: list[tuple[int, int, str, list[tuple[str, int, float]]]]) -> ShopData:
    """orders: (order_id, customer_id, placed_at, [(sku, quantity, unit_price), ...])."""
    order_rows = [{"order_id": o, "customer_id": c, "placed_at": at, "currency": "NOK"} for o, c, at, _ in orders]
    line_rows = [{"order_id": o, "line_no": i + 1, "sku": sku, "quantity": q, "unit_price": p}
                 for o, _, _, items in orders for i, (sku, q, p) in enumerate(items)]
    order_frame = pd.DataFrame(order_rows, columns=["order_id", "customer_id", "placed_at", "currency"])
    order_frame["placed_at"] = pd.to_datetime(order_frame["placed_at"], format="ISO8601")
    line_frame = pd.DataFrame(line_rows, columns=["order_id", "line_no", "sku", "quantity", "unit_price"])
    return ShopData.from_frames(run_date, pd.DataFrame(customers), PRODUCTS, order_frame, line_frame)


def random_shop(customers: int, orders: int, run_date: date, seed: int) -> ShopData:
    """A shop with random customers, orders (1-3 lines each) over the two years before run_date."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(run_date) - pd.Timedelta(days=730)
    people = [customer(i + 1, birthday=None if i % 3 else f"19{60 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                       consent=bool(i % 4), country=["NO", "SE", "DK"][i % 3]) for i in range(customers)]
    placed = start + pd.to_timedelta(rng.integers(0, 730 * 24 * 60, orders), unit="min")
    buyers = rng.integers(1, customers + 1, orders)
    skus = PRODUCTS["sku"].to_numpy()
    rows = [(1000 + k, int(buyers[k]), placed[k].isoformat(),
             [(str(rng.choice(skus)), int(rng.integers(1, 4)), float(rng.choice([80.0, 100.0, 400.0, 1500.0])))
              for _ in range(int(rng.integers(1, 4)))]) for k in range(orders)]
    return shop(run_date, people, rows)
