"""Replenishment: how likely the customer is to re-buy one of their regular products soon."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lojal.reco.repurchase import RepurchaseFit, RepurchaseParams, fit_repurchase, scores_of
from lojal.store.shopdata import ShopData


def reorder_features(data: ShopData, params: RepurchaseParams = RepurchaseParams(),
                     scores: RepurchaseFit | None = None) -> pd.DataFrame:
    """Per customer: the highest probability, over the products they bought on 2+ days, of re-buying
    one within `params.window_days` (the repurchase model of lojal.reco.repurchase, fitted on the
    history before the run date), and that product's usual gap in days. NaN without such products.
    `scores`: the night's fit when already made (the recommender shares it: one fit per night)."""
    index = data.customers.index
    out = pd.DataFrame({"reorder_probability": np.nan, "reorder_interval_days": np.nan}, index=index)
    lines = data.lines[["customer_id", "sku", "placed_at", "quantity"]]
    if lines.empty:
        return out
    scores = scores_of(scores) if scores is not None else fit_repurchase(lines, data.as_of, params)
    if len(scores.probability) == 0:
        return out
    frame = pd.DataFrame({"customer_id": scores.customer_ids, "p": scores.probability,
                          "gap": scores.interval_days})
    best = frame.sort_values(["customer_id", "p"], kind="stable").drop_duplicates("customer_id", keep="last")
    best = best.set_index("customer_id").reindex(index)
    out["reorder_probability"] = best["p"].astype(float)
    out["reorder_interval_days"] = best["gap"].astype(float)
    return out
