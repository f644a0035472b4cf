"""RFM scores (1-5 within the customer base) and the named RFM groups.

A buyer's score is 1 + the number of whole fifths of buyers who do strictly worse, so the best
fifth scores 5 and equal values always share a score (half the base with one order all score the
same instead of being split arbitrarily). Customers without orders have no scores.

The group comes from a grid of recency score (R) by FM = (frequency + monetary) / 2 rounded up:

    R \\ FM   1                2                  3                4              5
    5        New              Potential loyalist Potential loyalist Champions   Champions
    4        Promising        Potential loyalist Potential loyalist Loyal       Loyal
    3        About to sleep   About to sleep     Need attention    Loyal          Loyal
    2        Hibernating      Hibernating        At risk           At risk        Cannot lose them
    1        Lost             Lost               At risk           At risk        Cannot lose them
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NO_ORDERS = "No orders"
RFM_GROUPS = ["Champions", "Loyal", "Potential loyalist", "New", "Promising", "Need attention",
              "About to sleep", "At risk", "Cannot lose them", "Hibernating", "Lost"]

# GRID[r - 1][fm - 1]
GRID = [
    ["Lost", "Lost", "At risk", "At risk", "Cannot lose them"],
    ["Hibernating", "Hibernating", "At risk", "At risk", "Cannot lose them"],
    ["About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"],
    ["Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Loyal"],
    ["New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"],
]


def quintile_score(values: pd.Series) -> pd.Series:
    """1 + whole fifths of non-missing values strictly below each value (higher is better)."""
    present = values.dropna()
    below = present.rank(method="min") - 1
    scores = (np.floor(5 * below / len(present)) + 1).clip(1, 5) if len(present) else below
    return scores.reindex(values.index).astype("Int64")


def rfm_group(recency: pd.Series, frequency: pd.Series, monetary: pd.Series) -> pd.Series:
    grid = np.array(GRID, dtype=object)
    has = recency.notna().to_numpy()
    r = recency.fillna(1).to_numpy(dtype=int)
    fm = ((frequency.fillna(1) + monetary.fillna(1) + 1) // 2).to_numpy(dtype=int)
    groups = np.where(has, grid[r - 1, fm - 1], NO_ORDERS)
    return pd.Series(groups, index=recency.index, dtype="str")


def rfm(days_since_last_order: pd.Series, order_count: pd.Series, total_spend: pd.Series) -> pd.DataFrame:
    """Scores and group per customer; customers with no orders get NA scores and 'No orders'."""
    buyers = order_count > 0
    recency = quintile_score(-days_since_last_order.where(buyers))
    frequency = quintile_score(order_count.where(buyers).astype(float))
    monetary = quintile_score(total_spend.where(buyers))
    score_text = recency.astype("str") + frequency.astype("str") + monetary.astype("str")
    return pd.DataFrame({
        "recency_score": recency,
        "frequency_score": frequency,
        "monetary_score": monetary,
        "rfm_score": score_text.where(buyers).astype("str"),
        "rfm_group": rfm_group(recency, frequency, monetary),
    }, index=days_since_last_order.index)
