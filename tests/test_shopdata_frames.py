"""ShopData.from_frames joins, sorts and sums 12M order lines with array operations; here it must
give what the plain pandas way (merge, sort_values, group-by sums: the way it was written before,
summing each order's lines in line_no order) gives, to the last bit, on shuffled and awkward frames;
and an order's total must not depend on the order the store returns its lines in."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from lojal.clock import utc_to_local
from lojal.markets import Market, Markets
from lojal.store.shopdata import ShopData, start_of

MARKETS = Markets(markets=[Market(id="norway", currency="NOK", countries=["NO"]),
                           Market(id="euro", currency="EUR", countries=["DE"], rate=11.6)], default="norway")
ZONE = "Europe/Oslo"
AS_OF = date(2026, 3, 29)  # the night after the clocks went forward in Oslo


def _frames(seed: int):
    rng = np.random.default_rng(seed)
    n_orders, n_lines = 400, 2500
    order_ids = rng.permutation(np.arange(10_000, 10_000 + n_orders)) * 7  # not sorted, not dense
    placed = pd.Timestamp("2026-03-20") + pd.to_timedelta(rng.integers(0, 12 * 24 * 60, n_orders), unit="min")
    placed = placed.to_numpy().copy()
    placed[:40] = placed[40:80]  # ties on placed_at: order_id decides
    orders = pd.DataFrame({"order_id": order_ids, "customer_id": rng.integers(1, 60, n_orders),
                           "placed_at": placed,  # some after the cutoff: dropped with their lines
                           "currency": rng.choice(np.array(["NOK", "EUR", "SEK", None], dtype=object), n_orders)})
    line_orders = np.r_[rng.choice(order_ids[:350], n_lines - 5), [1, 1, 2, 3, 3]]  # 5 lines of no order
    lines = pd.DataFrame({"order_id": line_orders, "line_no": rng.integers(0, 6, n_lines),  # repeated line_no
                          "sku": rng.choice(np.array(["A", "B", "C", "gone", None], dtype=object), n_lines),
                          "quantity": rng.integers(1, 4, n_lines),
                          "unit_price": np.where(rng.random(n_lines) < 0.03, np.nan, rng.random(n_lines) * 300)})
    products = pd.DataFrame({"sku": ["A", "B", "C"], "title": ["a", "b", "c"], "category": ["x", None, "z"],
                             "price": [1.0, 2.0, 3.0], "currency": "NOK", "image_url": "", "product_url": "",
                             "in_stock": True, "margin": None})
    customers = pd.DataFrame({"customer_id": np.arange(1, 60), "email": "a@example.com", "first_name": "A",
                              "locale": "nb", "country": "NO", "time_zone": ZONE, "birthday": None,
                              "created_at": pd.Timestamp("2025-01-01"), "consent_email": True,
                              "consent_at": pd.Timestamp("2025-01-01"), "consent_source": "test"})
    return customers, products, orders, lines


def _the_pandas_way(products, orders, lines, markets):
    cutoff = start_of(AS_OF)
    lines = lines.sort_values(["order_id", "line_no"], kind="stable")  # each order's lines summed in this order
    orders = orders.copy()
    orders["placed_at"] = utc_to_local(orders["placed_at"], ZONE)
    orders = orders[orders["placed_at"] < cutoff]
    lines = lines.merge(orders[["order_id", "customer_id", "placed_at"]], on="order_id", how="inner")
    lines["category"] = products.set_index("sku")["category"].reindex(lines["sku"]).to_numpy()
    paid = lines["quantity"] * lines["unit_price"]
    orders["paid_total"] = orders["order_id"].map(paid.groupby(lines["order_id"]).sum()).fillna(0.0)
    rate = orders.set_index("order_id")["currency"].map(markets.rates() if markets is not None else {})
    lines["amount"] = paid * lines["order_id"].map(rate.fillna(1.0)).fillna(1.0).to_numpy()
    orders["total"] = orders["order_id"].map(lines.groupby("order_id")["amount"].sum()).fillna(0.0)
    lines = lines.sort_values(["placed_at", "order_id", "line_no"], kind="stable").reset_index(drop=True)
    orders = orders.sort_values(["placed_at", "order_id"], kind="stable").reset_index(drop=True)
    return orders, lines


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("markets", [MARKETS, None])
def test_orders_and_lines_are_what_merge_sort_and_group_by_give(seed, markets):
    customers, products, orders, lines = _frames(seed)
    data = ShopData.from_frames(AS_OF, customers, products, orders, lines, timezone=ZONE, markets=markets)
    expected_orders, expected_lines = _the_pandas_way(products, orders, lines, markets)
    assert 0 < len(data.orders) < len(orders) and 0 < len(data.lines) < len(lines)  # the cut dropped some
    pd.testing.assert_frame_equal(data.orders, expected_orders[data.orders.columns], check_exact=True)
    pd.testing.assert_frame_equal(data.lines, expected_lines[data.lines.columns], check_exact=True)


def test_no_orders_and_no_lines():
    customers, products, orders, lines = _frames(1)
    data = ShopData.from_frames(AS_OF, customers, products, orders.iloc[:0], lines.iloc[:0], timezone=ZONE,
                                markets=MARKETS)
    assert data.orders.empty and data.lines.empty
    assert list(data.lines.columns)[-1] == "amount"


def test_totals_do_not_depend_on_the_order_lines_arrive_in():
    customers, products, orders, lines = _frames(4)
    lines["line_no"] = np.arange(len(lines))  # as in the store: (order_id, line_no) is a key
    lines["unit_price"] = np.random.default_rng(5).random(len(lines)) * 1e3 / 7  # sums that round differently
    first = ShopData.from_frames(AS_OF, customers, products, orders, lines, timezone=ZONE, markets=MARKETS)
    shuffled = lines.sample(frac=1.0, random_state=9).reset_index(drop=True)
    second = ShopData.from_frames(AS_OF, customers, products, orders, shuffled, timezone=ZONE, markets=MARKETS)
    pd.testing.assert_frame_equal(first.orders, second.orders, check_exact=True)
    pd.testing.assert_frame_equal(first.lines, second.lines, check_exact=True)
