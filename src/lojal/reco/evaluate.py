"""Offline evaluation: a time split, ranking metrics, and a run over every strategy and blend.

Definitions (the ones that reproduce the README baselines of the UCI Online Retail split):
* evaluated customers: at least one purchase before the cutoff and one in [cutoff, cutoff + horizon);
* truth: the distinct products a customer bought in the horizon (products never seen before the
  cutoff count too: no model can hit them, as in real life);
* Recall@K = |top-K ∩ truth| / |truth|;  NDCG@K = DCG / ideal DCG of min(K, |truth|) hits;
* hit rate = share of customers with at least one hit;
* recall_repeat / recall_new: recall restricted to the truth items the customer had / had not bought
  before the cutoff, averaged over the customers who have such items;
* coverage = distinct recommended products / products bought before the cutoff.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lojal.reco.recommender import Blend, Recommender, fit_on_history
from lojal.reco.strategies import RecoParams

STRATEGIES = ("repeat", "replenishment", "co_purchase", "ease", "popular", "trending", "category_affinity")
NO_RULES = dict(exclude_bought_within_days=0, max_per_category=None, price_band=None, margin_boost=0.0)


def evaluation_blends(k: int) -> dict[str, Blend]:
    """Each strategy alone (no fallback), and blends: "a>b" = a fills all K slots, b fills what a could
    not; "a+b" = half the slots each (popular fills any shortfall)."""
    half = k // 2
    blends = {name: Blend(((name, k),), fallbacks=(), **NO_RULES) for name in STRATEGIES}
    blends.update({
        "repeat>ease": Blend((("repeat", k),), ("ease", "popular"), **NO_RULES),
        "repeat>co_purchase": Blend((("repeat", k),), ("co_purchase", "popular"), **NO_RULES),
        "repeat>trending": Blend((("repeat", k),), ("trending", "popular"), **NO_RULES),
        "replenishment>repeat>ease": Blend((("replenishment", half), ("repeat", k - half)), ("ease", "popular"),
                                           **NO_RULES),
        "repeat+ease": Blend((("repeat", half), ("ease", k - half)), ("popular",), **NO_RULES),
        "ease+co_purchase": Blend((("ease", half), ("co_purchase", k - half)), ("popular",),
                                              **NO_RULES),
    })
    return blends


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame               # order lines before the cutoff
    customers: np.ndarray             # evaluated customer ids
    truth: list[frozenset[str]]       # per evaluated customer
    bought: list[frozenset[str]]      # per evaluated customer: products bought before the cutoff
    cutoff: pd.Timestamp
    horizon_days: int


def time_split(lines: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> Split:
    cutoff = pd.Timestamp(cutoff)
    end = cutoff + pd.Timedelta(days=horizon_days)
    train = lines[lines["placed_at"] < cutoff]
    future = lines[(lines["placed_at"] >= cutoff) & (lines["placed_at"] < end)]
    customers = np.intersect1d(train["customer_id"].unique(), future["customer_id"].unique())
    truth = future.groupby("customer_id")["sku"].agg(frozenset).reindex(customers)
    bought = train[train["customer_id"].isin(customers)].groupby("customer_id")["sku"].agg(frozenset).reindex(customers)
    return Split(train, customers, list(truth), list(bought), cutoff, horizon_days)


@dataclass(frozen=True)
class Metrics:
    recall: float
    ndcg: float
    hit_rate: float
    coverage: float
    recall_repeat: float
    recall_new: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


def ranking_metrics(recommended: Sequence[Sequence[str]], truth: Sequence[frozenset[str]],
                    bought: Sequence[frozenset[str]], k: int, catalogue_size: int) -> Metrics:
    """Metrics of one top-K list per customer (see the module docstring for the definitions)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recall, ndcg, hit, repeat_recall, new_recall = [], [], [], [], []
    for items, wanted, before in zip(recommended, truth, bought):
        top = list(items)[:k]
        gains = np.array([item in wanted for item in top], dtype=float)
        hits = set(top) & wanted
        recall.append(len(hits) / len(wanted))
        ideal = discounts[:min(k, len(wanted))].sum()
        ndcg.append(float(gains @ discounts[:len(gains)]) / ideal)
        hit.append(bool(hits))
        repeats, news = wanted & before, wanted - before
        if repeats:
            repeat_recall.append(len(hits & repeats) / len(repeats))
        if news:
            new_recall.append(len(hits & news) / len(news))
    shown = {item for items in recommended for item in list(items)[:k]}
    return Metrics(_mean(recall), _mean(ndcg), _mean(hit), len(shown) / max(catalogue_size, 1),
                   _mean(repeat_recall), _mean(new_recall))


def _mean(values: list) -> float:
    return float(np.mean(values)) if values else 0.0


def evaluate_split(split: Split, k: int, params: RecoParams = RecoParams(),
                   blends: dict[str, Blend] | None = None,
                   progress: Callable[[str], None] = lambda _: None) -> dict[str, Metrics]:
    """Fit on the split's history once, then score every strategy and blend."""
    progress("fitting strategies")
    recommender = fit_on_history(split.train, split.cutoff, params)
    blends = evaluation_blends(k) if blends is None else blends
    if not _has_categories(recommender):
        blends = {name: blend for name, blend in blends.items()
                  if "category_affinity" not in {s for s, _ in blend.slots}}
    results = {}
    for name, blend in blends.items():
        progress(name)
        results[name] = ranking_metrics(top_skus(recommender, split.customers, blend), split.truth, split.bought,
                                        k, recommender.model.inter.n_items)
    return results


def top_skus(recommender: Recommender, customers: np.ndarray, blend: Blend) -> list[list[str]]:
    skus = recommender.model.inter.skus
    return [[str(skus[p.item]) for p in picks] for picks in recommender.rank(customers, blend)]


def _has_categories(recommender: Recommender) -> bool:
    return bool((recommender.model.item_category >= 0).any())
