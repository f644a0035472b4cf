"""Offline evaluation of replenishment timing: who re-buys which product within a window.

Candidates: the (customer, product) pairs with at least two purchase occasions (customer, product,
day) before the cutoff. Label: the pair has an occasion in [cutoff, cutoff + window). Every score is
computed from history before the cutoff; Lojal's model is trained on that history alone
(`lojal.reco.repurchase`). Baselines, in the same run:

* frequency: number of occasions before the cutoff;
* recency: −days since the last occasion;
* fixed_30_day, own_median_gap, product_median_gap: closeness of days-since-last to an interval,
  −|log(days since last / interval)|, with the interval 30 days, the pair's own median gap, or the
  product's median gap over every customer (from 3 gaps; the own median where it has fewer).

Metrics: ROC AUC with tied scores given their average rank (Mann-Whitney), and precision of the top
1,000 pairs and of the top 5% (at least one pair), where a group of tied scores straddling the cut
counts in proportion (the expected precision under a random order among ties).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from lojal.reco.repurchase import Occasions, RepurchaseParams, labels, occasions_from_lines, pair_features, \
    score_occasions

BASELINES = ("frequency", "fixed_30_day", "own_median_gap", "product_median_gap", "recency")
TOP_PAIRS = 1_000
TOP_SHARE = 0.05


@dataclass(frozen=True)
class TimingMetrics:
    auc: float
    precision_at_1000: float
    precision_top5pct: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class TimingResult:
    pairs: int
    positives: int
    results: dict[str, TimingMetrics]
    training: dict
    method: str

    def to_dict(self) -> dict:
        return {"pairs": self.pairs, "positives": self.positives,
                "results": {name: m.to_dict() for name, m in self.results.items()}}


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney AUC, ties averaged; NaN when only one class is present."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)   # average ranks for ties
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def precision_at(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    """Share of positives among the top k; the tied group at the cut counts in proportion."""
    k = min(k, len(y))
    if k == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    threshold = scores[order[k - 1]]
    above = scores > threshold
    tied = scores == threshold
    from_tied = k - int(above.sum())
    hits = y[above].sum() + from_tied * y[tied].mean()
    return float(hits / k)


def timing_metrics(scores: np.ndarray, y: np.ndarray) -> TimingMetrics:
    scores = np.nan_to_num(np.asarray(scores, float), nan=-np.inf)
    top = max(1, int(round(TOP_SHARE * len(y))))
    return TimingMetrics(roc_auc(scores, y), precision_at(scores, y, TOP_PAIRS), precision_at(scores, y, top))


def closeness(since: np.ndarray, interval: np.ndarray) -> np.ndarray:
    """−|log(days since last / interval)|: 0 when exactly due, lower further either side."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.abs(np.log(since / interval))


def baseline_scores(occ: Occasions, cutoff_day: int) -> dict[str, np.ndarray]:
    features = pair_features(occ, cutoff_day)
    since = features.column("days_since_last").astype(float)
    own = features.column("own_median_gap").astype(float)
    product = features.column("product_median_gap").astype(float)
    return {
        "frequency": features.column("occasions").astype(float),
        "fixed_30_day": closeness(since, 30.0),
        "own_median_gap": closeness(since, own),
        "product_median_gap": closeness(since, np.where(np.isnan(product), own, product)),
        "recency": -since,
    }


def evaluate_timing(lines: pd.DataFrame, cutoff: pd.Timestamp, window_days: int = 14,
                    params: RepurchaseParams | None = None,
                    progress: Callable[[str], None] = lambda _: None) -> TimingResult:
    """Score every candidate pair as of `cutoff` (Lojal's model and the baselines) against what
    happened in the `window_days` after it."""
    params = params or RepurchaseParams(window_days=window_days, step_days=max(window_days, 14))
    progress("reading occasions")
    occ = occasions_from_lines(lines)
    cutoff_day = int(pd.Timestamp(cutoff).to_datetime64().astype("datetime64[D]").astype(np.int64))
    progress("fitting the repurchase model")
    lojal = score_occasions(occ, cutoff_day, params)        # drops everything from the cutoff on first
    y = labels(occ, lojal.features, cutoff_day, window_days)
    progress("scoring baselines")
    scores = {"lojal": lojal.probability, **baseline_scores(occ, cutoff_day)}
    results = {name: timing_metrics(values, y) for name, values in scores.items()}
    return TimingResult(int(len(y)), int(y.sum()), results, lojal.training, lojal.method)
