"""Customer features, computed once per run: one row per customer, indexed by customer_id.

"Today" is `data.run_date`; `data` is already cut at the start of that day, so a run for a past
date sees the world as it was then. See docs/segments.md for every feature.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from lojal.config import Loyalty
from lojal.features.bgnbd import expected_purchases, fit_sample, probability_alive
from lojal.features.history import order_days, order_history, repeat_purchase_summary
from lojal.features.registry import CUSTOMER_ATTRIBUTES, FEATURES, Feature
from lojal.features.repurchase import reorder_features
from lojal.features.rfm import rfm
from lojal.reco.repurchase import RepurchaseFit
from lojal.features.tiers import loyalty_tiers
from lojal.store.shopdata import ShopData

PREDICTION_DAYS = 90

__all__ = ["compute_features", "rendering_features", "FEATURES", "RENDERING_FEATURES", "Feature"]


def compute_features(data: ShopData, loyalty: Loyalty, previous_run: date | None = None,
                     repurchase: RepurchaseFit | None = None) -> pd.DataFrame:
    """Every feature in FEATURES for every customer in data.customers (with or without orders).
    `previous_run`: the date of the last completed run before this one (previous_tier is measured
    then); None means the night before. `repurchase`: the night's repurchase fit when made already (or
    a function returning it, called last: the other features are computed while it is fitted)."""
    days = order_days(data.orders)
    history = order_history(data, days)
    parts = [
        history,
        rfm(history["days_since_last_order"], history["order_count"], history["total_spend"]),
        loyalty_tiers(data, loyalty, previous_run),
        predictions(data, days),
        reorder_features(data, scores=repurchase),
        data.customers[CUSTOMER_ATTRIBUTES],
    ]
    features = pd.concat(parts, axis=1)
    features.index.name = "customer_id"
    return features[list(FEATURES)]


# What a message's context reads from the features (lojal.pipeline: the customer and the last order).
RENDERING_FEATURES = ("order_count", "days_since_last_order", "last_order_id", "tier", "previous_tier")


def rendering_features(data: ShopData, loyalty: Loyalty, previous_run: date | None = None) -> pd.DataFrame:
    """RENDERING_FEATURES alone, as compute_features gives them, without fitting a model (BG/NBD,
    repurchase): what rendering recorded ledger rows needs (a Dask worker, `lojal ledger show --render`)."""
    history = order_history(data, order_days(data.orders))
    features = pd.concat([history, loyalty_tiers(data, loyalty, previous_run)], axis=1)
    features.index.name = "customer_id"
    return features[list(RENDERING_FEATURES)]


def predictions(data: ShopData, days: pd.DataFrame) -> pd.DataFrame:
    """BG/NBD p_alive and expected purchases in the next 90 days (NaN without orders or a fit)."""
    index = data.customers.index
    out = pd.DataFrame({"p_alive": np.nan, "expected_purchases_90d": np.nan}, index=index)
    summary = repeat_purchase_summary(days, index, data.as_of)
    x, t_x, T = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    params = fit_sample(x, t_x, T)
    if params is None:
        return out
    out.loc[summary.index, "p_alive"] = probability_alive(params, x, t_x, T)
    out.loc[summary.index, "expected_purchases_90d"] = expected_purchases(params, PREDICTION_DAYS / 7, x, t_x, T)
    return out
