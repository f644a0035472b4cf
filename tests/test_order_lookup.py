"""ShopData.order_lookup: each batch's last orders found by index, as a scan of every line finds them."""

import numpy as np
import pandas as pd

from lojal.store.shopdata import OrderLookup


def _frames(seed: int = 3):
    rng = np.random.default_rng(seed)
    order_ids = rng.permutation(np.arange(100, 400))
    orders = pd.DataFrame({"order_id": order_ids, "customer_id": rng.integers(1, 50, len(order_ids)),
                           "currency": "NOK"})
    line_orders = rng.choice(order_ids[:250], 1200)  # the last 50 orders have no lines
    lines = pd.DataFrame({"order_id": line_orders, "line_no": np.arange(len(line_orders)),
                          "sku": [f"S{i % 17}" for i in range(len(line_orders))]})
    return orders, lines


def test_lines_of_matches_a_scan_in_order():
    orders, lines = _frames()
    lookup = OrderLookup.build(orders, lines)
    wanted = np.array([int(orders["order_id"].iloc[i]) for i in (5, 0, 260, 17, 299)] + [99999])
    got = lookup.lines_of(wanted)
    expected = pd.concat([lines[lines["order_id"] == o] for o in wanted], ignore_index=True)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)
    assert lookup.lines_of(np.array([260 + 10_000])).empty
    heads = lookup.heads(wanted[:3])
    assert heads.index.tolist() == wanted[:3].tolist()
    assert (heads["customer_id"].to_numpy() == orders.set_index("order_id").loc[wanted[:3], "customer_id"].to_numpy()).all()


def test_no_lines_at_all():
    orders, lines = _frames()
    lookup = OrderLookup.build(orders, lines.iloc[:0])
    assert lookup.lines_of(orders["order_id"].to_numpy()[:10]).empty
