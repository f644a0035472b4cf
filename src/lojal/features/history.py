"""Order-history features: one row per customer, computed with grouped numpy/pandas ops."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lojal.store.shopdata import ShopData

DAY = pd.Timedelta(days=1)
YEAR = pd.Timedelta(days=365)


def days_between(earlier: pd.Series, today: pd.Timestamp) -> pd.Series:
    """Calendar days from each timestamp's date to `today` (float, NaN for NaT)."""
    return ((today - earlier.dt.floor("D")) / DAY).astype(float)


def order_history(data: ShopData, days: pd.DataFrame) -> pd.DataFrame:
    """Per-customer order history, indexed by customer_id (customers without orders get 0/NaN/NaT)."""
    index = data.customers.index
    today = data.as_of.floor("D")
    # np.lexsort on the raw int64 values: several times faster than DataFrame.sort_values on 4M+ rows.
    placed = data.orders["placed_at"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    orders = data.orders.take(np.lexsort((data.orders["order_id"].to_numpy(), placed)))
    by_customer = orders.groupby("customer_id", sort=False)
    last = orders.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    recent = orders[orders["placed_at"] >= data.as_of - YEAR].groupby("customer_id", sort=False)

    out = pd.DataFrame(index=index)
    out["first_order_at"] = by_customer["placed_at"].min().reindex(index)
    out["last_order_at"] = last["placed_at"].reindex(index)
    out["last_order_id"] = last["order_id"].reindex(index).astype("Int64")
    out["last_order_total"] = last["total"].reindex(index).astype(float)
    out["days_since_last_order"] = days_between(out["last_order_at"], today)
    out["days_since_first_order"] = days_between(out["first_order_at"], today)
    out["order_count"] = by_customer.size().reindex(index, fill_value=0).astype("int64")
    out["order_count_12m"] = recent.size().reindex(index, fill_value=0).astype("int64")
    out["total_spend"] = by_customer["total"].sum().reindex(index, fill_value=0.0).astype(float)
    out["average_order_value"] = out["total_spend"] / out["order_count"].where(out["order_count"] > 0)
    out["spend_12m"] = recent["total"].sum().reindex(index, fill_value=0.0).astype(float)
    out = out.join(line_history(data.lines, index))
    out["tenure_days"] = days_between(data.customers["created_at"], today)
    out = out.join(purchase_rhythm(days, index, today))
    return out


def line_history(lines: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Distinct products and categories, and the category with the highest spend."""
    # Integer codes instead of strings: hashing 10M SKU strings would dominate the run.
    customer_codes, customers = pd.factorize(lines["customer_id"])
    sku_codes, skus = pd.factorize(lines["sku"])
    category_codes, categories = pd.factorize(lines["category"], sort=True)
    customer_codes = customer_codes.astype(np.int64)

    sku_width = max(len(skus), 1)
    product_pairs = pd.unique(customer_codes * sku_width + sku_codes)  # hash-based: np.unique is slower here
    products = np.bincount(product_pairs // sku_width, minlength=len(customers))

    width = max(len(categories), 1)
    # sort=True: pairs ordered by customer, then category name, so idxmax's first maximum is the
    # alphabetically first category among equal spends.
    pair_codes, pair_key = pd.factorize(customer_codes * width + category_codes, sort=True)
    spend = np.bincount(pair_codes, weights=lines["amount"].to_numpy(dtype=float), minlength=len(pair_key))
    pair_customer, pair_category = pair_key // width, pair_key % width
    best = pd.Series(spend).groupby(pair_customer, sort=False).idxmax().to_numpy()
    favourite = pd.Series(np.asarray(categories, dtype=object)[pair_category[best]],
                          index=np.asarray(customers)[pair_customer[best]], dtype="str")

    out = pd.DataFrame(index=index)
    out["distinct_products"] = pd.Series(products, index=customers).reindex(index, fill_value=0).astype("int64")
    out["distinct_categories"] = (pd.Series(np.bincount(pair_customer, minlength=len(customers)), index=customers)
                                  .reindex(index, fill_value=0).astype("int64"))
    out["favourite_category"] = favourite.reindex(index).astype("str")
    return out


def order_days(orders: pd.DataFrame) -> pd.DataFrame:
    """Per buyer: first and last calendar day with an order, and how many distinct days they ordered."""
    customer_codes, customers = pd.factorize(orders["customer_id"])
    day_numbers = orders["placed_at"].to_numpy().astype("datetime64[D]").astype(np.int64)
    first_number = int(day_numbers.min()) if len(day_numbers) else 0
    span = int(day_numbers.max()) - first_number + 1 if len(day_numbers) else 1
    # One integer per (customer, day): distinct pairs by hashing ints, not two columns.
    pairs = pd.unique(customer_codes.astype(np.int64) * span + (day_numbers - first_number))
    grouped = pd.Series(pairs % span + first_number).groupby(pairs // span)
    days = pd.DataFrame({"first_day": grouped.min(), "last_day": grouped.max(), "order_days": grouped.size()})
    days.index = pd.Index(np.asarray(customers)[days.index.to_numpy()], name="customer_id")
    for column in ("first_day", "last_day"):
        days[column] = days[column].to_numpy().astype("datetime64[D]").astype("datetime64[ns]")
    return days


def purchase_rhythm(days: pd.DataFrame, index: pd.Index, today: pd.Timestamp) -> pd.DataFrame:
    """The customer's own average gap between order days, and when the next order is due."""
    gaps = days["order_days"] - 1
    span = (days["last_day"] - days["first_day"]) / DAY
    mean_gap = (span / gaps.where(gaps > 0)).reindex(index).astype(float)
    expected = days["last_day"].reindex(index) + pd.to_timedelta(mean_gap.round(), unit="D")
    out = pd.DataFrame(index=index)
    out["mean_days_between_orders"] = mean_gap
    out["expected_next_order_at"] = expected
    out["days_until_next_order"] = ((expected - today) / DAY).astype(float)
    return out


def repeat_purchase_summary(days: pd.DataFrame, index: pd.Index, as_of: pd.Timestamp) -> pd.DataFrame:
    """BG/NBD inputs in weeks per buyer: x repeat order days, t_x first-to-last, T first-to-now."""
    week = pd.Timedelta(weeks=1)
    summary = pd.DataFrame({
        "x": (days["order_days"] - 1).astype(float),
        "t_x": (days["last_day"] - days["first_day"]) / week,
        "T": (as_of.floor("D") - days["first_day"]) / week,
    })
    return summary[summary.index.isin(index)]
