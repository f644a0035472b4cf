"""Benchmark: features and every shipped segment on a synthetic shop of 1,000,000 customers and
10,000,000 order lines, against a naive per-customer Python loop over the same segment trees.

    .venv/bin/python bench/segments.py [--customers 1000000] [--lines 10000000] [--sample 2000]

Frames are generated directly with numpy (no SQL), as `load_shop_data` would return them.
Prints feature time, segment time, peak memory (max RSS) and the naive loop's extrapolated time.
"""

from __future__ import annotations

import argparse
import math
import resource
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lojal.config import Loyalty, Tier
from lojal.features import compute_features, predictions
from lojal.features.history import order_days
from lojal.paths import Paths
from lojal.segments import evaluate_segments, load_segments
from lojal.segments.evaluate import resolve_date
from lojal.segments.model import AllOf, AnyOf, BirthdayToday, Bought, Compare, InSegment, Not, OrderedDaysAgo
from lojal.store.shopdata import ShopData

RUN_DATE = date(2024, 6, 15)
PROJECT = Path(__file__).resolve().parents[1]
LOYALTY = Loyalty(tiers=[Tier(name="Bronze", min_spend_12m=0), Tier(name="Silver", min_spend_12m=3000),
                         Tier(name="Gold", min_spend_12m=8000)])


def peak_rss_gb() -> float:
    """Peak resident memory since the last reset_peak() (VmHWM), else since the process started."""
    try:
        status = Path("/proc/self/status").read_text()
        kilobytes = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    return kilobytes / 1024 ** 2


def current_rss_gb() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024 ** 2


def reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM (and ru_maxrss), so each stage's peak is its own."""
    Path("/proc/self/clear_refs").write_text("5")


def synthetic_shop(customers: int, lines: int, seed: int = 1) -> ShopData:
    """Customers with skewed purchase rates; orders of 1-4 lines over three years before the run date."""
    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp(RUN_DATE)
    ids = np.arange(1, customers + 1, dtype=np.int64)
    created = as_of - pd.to_timedelta(rng.integers(1, 4 * 365, customers), unit="D")
    birthday = pd.Series(pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 365 * 55, customers), unit="D"))
    birthday[rng.uniform(size=customers) < 0.4] = pd.NaT
    customer_frame = pd.DataFrame({
        "email": pd.Series(ids).astype(str) + "@example.com",
        "first_name": "Kari",
        "locale": rng.choice(["en", "nb", "sv", "da"], customers),
        "country": rng.choice(["NO", "SE", "DK"], customers),
        "time_zone": "Europe/Oslo",
        "birthday": birthday.to_numpy(),
        "created_at": created,
        "consent_email": rng.uniform(size=customers) < 0.8,
        "consent_at": created,
        "consent_source": "checkout",
    }, index=pd.Index(ids, name="customer_id"))

    n_products = 2000
    skus = np.array([f"SKU-{i:05d}" for i in range(n_products)])
    categories = np.array([f"Category {i % 40:02d}" for i in range(n_products)])
    prices = np.round(rng.lognormal(5.5, 0.7, n_products), 0)
    products = pd.DataFrame({"title": skus, "category": categories, "price": prices, "currency": "NOK",
                             "image_url": "", "product_url": "", "in_stock": True}, index=pd.Index(skus, name="sku"))

    per_order = rng.integers(1, 5, lines // 2)
    n_orders = int(np.searchsorted(np.cumsum(per_order), lines)) + 1
    per_order = per_order[:n_orders]
    per_order[-1] -= int(per_order.sum() - lines)
    weights = rng.gamma(0.6, 1.0, customers)
    buyer = rng.choice(ids, n_orders, p=weights / weights.sum())
    placed = (as_of - pd.to_timedelta(rng.integers(60, 3 * 365 * 24 * 3600, n_orders), unit="s")).astype("datetime64[ns]")
    order_ids = np.arange(1, n_orders + 1, dtype=np.int64)

    line_order = np.repeat(np.arange(n_orders), per_order)
    product = rng.integers(0, n_products, lines)  # uniform popularity is enough for timing
    quantity = rng.integers(1, 4, lines)
    amount = quantity * prices[product]
    line_frame = pd.DataFrame({
        "order_id": order_ids[line_order],
        "line_no": np.arange(lines) - np.repeat(np.cumsum(per_order) - per_order, per_order) + 1,
        "customer_id": buyer[line_order],
        "placed_at": placed.to_numpy()[line_order],
        "sku": pd.Series(skus[product], dtype="str"),
        "category": pd.Series(categories[product], dtype="str"),
        "quantity": quantity,
        "unit_price": prices[product],
        "amount": amount,
    })
    totals = np.bincount(line_order, weights=amount, minlength=n_orders)
    orders = pd.DataFrame({"order_id": order_ids, "customer_id": buyer, "placed_at": placed.to_numpy(),
                           "currency": "NOK", "total": totals})
    orders = orders.sort_values(["placed_at", "order_id"], kind="stable").reset_index(drop=True)
    line_frame = line_frame.sort_values(["placed_at", "order_id", "line_no"], kind="stable").reset_index(drop=True)
    return ShopData(as_of, customer_frame, products, orders, line_frame)


# -- the naive way: walk each customer's tree in Python, one customer at a time -------------------

def naive_member(condition, row: pd.Series, history: pd.DataFrame, today: pd.Timestamp, segments, memo) -> bool:
    if isinstance(condition, AllOf):
        return all(naive_member(c, row, history, today, segments, memo) for c in condition.conditions)
    if isinstance(condition, AnyOf):
        return any(naive_member(c, row, history, today, segments, memo) for c in condition.conditions)
    if isinstance(condition, Not):
        return not naive_member(condition.condition, row, history, today, segments, memo)
    if isinstance(condition, InSegment):
        name = condition.segment
        if name not in memo:
            memo[name] = naive_member(segments[name].where, row, history, today, segments, memo)
        return memo[name] == condition.member
    if isinstance(condition, OrderedDaysAgo):
        day = today - pd.Timedelta(days=condition.days)
        return bool(((history["placed_at"] >= day) & (history["placed_at"] < day + pd.Timedelta(days=1))).any())
    if isinstance(condition, BirthdayToday):
        b = row["birthday"]
        hit = not pd.isna(b) and (b.month, b.day) == (today.month, today.day)
        return hit == condition.expected
    if isinstance(condition, Bought):
        wanted = history["sku"].isin(condition.skus) if condition.skus else history["category"].isin(condition.categories)
        if condition.within_days:
            wanted &= history["placed_at"] >= today - pd.Timedelta(days=condition.within_days)
        return bool(wanted.any())
    assert isinstance(condition, Compare)
    value = row[condition.feature]
    if condition.op == "is_null":
        return pd.isna(value) == condition.value
    if pd.isna(value):
        return False
    operand = condition.value
    if isinstance(value, pd.Timestamp):
        value = value.floor("D")
        operand = [resolve_date(v, today) for v in operand] if isinstance(operand, list) else resolve_date(operand, today)
    return {"eq": lambda: value == operand, "ne": lambda: value != operand, "lt": lambda: value < operand,
            "lte": lambda: value <= operand, "gt": lambda: value > operand, "gte": lambda: value >= operand,
            "between": lambda: operand[0] <= value <= operand[1], "in": lambda: value in operand,
            "not_in": lambda: value not in operand, "contains": lambda: operand in value}[condition.op]()


def naive_segments(segment_set, features: pd.DataFrame, data: ShopData, sample: np.ndarray) -> pd.DataFrame:
    today = data.as_of.floor("D")
    by_customer = dict(tuple(data.lines[data.lines["customer_id"].isin(sample)].groupby("customer_id")))
    empty = data.lines.iloc[:0]
    rows = {}
    for customer_id in sample:
        row = features.loc[customer_id]
        history = by_customer.get(customer_id, empty)
        memo: dict[str, bool] = {}
        rows[customer_id] = {s.name: naive_member(s.where, row, history, today, segment_set.segments, memo)
                             for s in segment_set}
    return pd.DataFrame.from_dict(rows, orient="index")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=2_000)
    args = parser.parse_args()

    segment_set = load_segments(Paths.resolve(PROJECT))
    started = time.perf_counter()
    data = synthetic_shop(args.customers, args.lines)
    generated = time.perf_counter() - started
    print(f"shop: {len(data.customers):,} customers, {len(data.orders):,} orders, {len(data.lines):,} lines "
          f"(generated in {generated:.1f} s); peak RSS while generating {peak_rss_gb():.2f} GB, "
          f"RSS holding the shop {current_rss_gb():.2f} GB")
    stage_peaks = [peak_rss_gb()]

    reset_peak()
    started = time.perf_counter()
    features = compute_features(data, LOYALTY)
    feature_time = time.perf_counter() - started
    print(f"features: {feature_time:.1f} s for {features.shape[1]} features; peak RSS during features "
          f"{peak_rss_gb():.2f} GB")
    stage_peaks.append(peak_rss_gb())

    days = order_days(data.orders)
    started = time.perf_counter()
    predictions(data, days)
    print(f"  of which BG/NBD fit and predictions (timed again on their own): {time.perf_counter() - started:.1f} s")

    reset_peak()
    started = time.perf_counter()
    membership = evaluate_segments(segment_set, features, data)
    segment_time = time.perf_counter() - started
    print(f"segments: {segment_time:.2f} s for {len(segment_set)} segments; peak RSS during segments "
          f"{peak_rss_gb():.2f} GB")
    stage_peaks.append(peak_rss_gb())
    for name in membership.columns:
        print(f"  {name:<18} {int(membership[name].sum()):>9,}")

    sample = np.random.default_rng(2).choice(features.index.to_numpy(), args.sample, replace=False)
    started = time.perf_counter()
    naive = naive_segments(segment_set, features, data, sample)
    naive_time = time.perf_counter() - started
    extrapolated = naive_time / args.sample * len(features)
    agree = naive[membership.columns].astype(bool).equals(membership.loc[sample].astype(bool))
    print(f"naive per-customer loop: {naive_time:.1f} s for {args.sample:,} customers -> "
          f"{extrapolated / 60:.0f} min extrapolated to {len(features):,} "
          f"({extrapolated / segment_time:,.0f}x the vectorized segment time); same answers on the sample: {agree}")
    print(f"process peak RSS (largest stage peak): {max(stage_peaks):.2f} GB")
    if not agree or math.isnan(extrapolated):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
