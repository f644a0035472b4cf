"""Scoring strategies, fitted once on the interaction matrices.

Each strategy turns a block of customer rows into a dense float32 score block (rows × items);
a score of 0 means "not a candidate". Dense blocks are only ever built for a chunk of customers,
so memory stays bounded by chunk size × catalogue size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp

from lojal.reco.matrix import Interactions
from lojal.reco.repurchase import RepurchaseFit, RepurchaseParams, RepurchaseScores, scores_of

REPEAT_STRATEGIES = frozenset({"repeat", "replenishment"})
DISCOVERY_STRATEGIES = frozenset({"co_purchase", "ease"})


@dataclass(frozen=True)
class RecoParams:
    """Hyper-parameters. The defaults were tuned on the 2011-10-11 split of UCI Online Retail
    (see docs/recommendations.md), never on the 2011-11-10 report split."""

    half_life_days: float = 180.0        # recency decay of a purchase occasion
    popularity_exponent: float = 0.25    # repeat: own score × (recent popularity share)^exponent
    recent_days: int = 30                # "right now" window (repeat prior, trending)
    popular_days: int = 90               # popular: share of customers over this window
    knn_neighbours: int = 20             # co_purchase: neighbours kept per item
    ease_lambda: float = 200.0           # EASE L2 regularisation
    ease_max_items: int = 5_000          # EASE runs on the most-bought items only (dense inverse)
    repurchase: RepurchaseParams = RepurchaseParams()   # replenishment: the repurchase model


@dataclass
class FittedStrategies:
    inter: Interactions
    params: RecoParams
    item_category: np.ndarray                 # category code per item (-1 unknown)
    categories: np.ndarray                    # category names
    popular: np.ndarray                       # share of customers, last popular_days
    recent: np.ndarray                        # share of customers, last recent_days
    trending: np.ndarray
    neighbours: sp.csr_matrix                 # item × item cosine, top-k per target column
    ease_items: np.ndarray                    # item columns EASE covers
    ease_weights: np.ndarray                  # dense B over ease_items
    ease_history: sp.csr_matrix               # binary purchases restricted to ease_items
    due: sp.csr_matrix                        # replenishment: P(re-buy within the window) per customer × item
    interval_days: sp.csr_matrix              # the customer's own median gap per customer × item
    category_share: sp.csr_matrix             # customer × category, decayed share
    category_item_score: np.ndarray           # item popularity relative to the best of its category
    timings: dict[str, float] = field(default_factory=dict)

    def score(self, strategy: str, rows: np.ndarray) -> np.ndarray:
        return SCORERS[strategy](self, rows)


def fit_strategies(inter: Interactions, item_category: np.ndarray, categories: np.ndarray,
                   params: RecoParams = RecoParams(), repurchase: RepurchaseFit | None = None) -> FittedStrategies:
    """`repurchase`: the repurchase model's scores (`fit_repurchase` on the same lines and as_of), or
    a function returning them, called after every other strategy is fitted; None leaves
    `replenishment` without candidates."""
    timings: dict[str, float] = {}
    start = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        timings[name] = now - start
        start = now

    binary = (inter.occasions > 0).astype(np.float32)
    popular = customer_share(inter, params.popular_days)
    recent = customer_share(inter, params.recent_days)
    trending = trending_scores(inter, params.recent_days, params.popular_days)
    lap("popularity")
    gram = item_gram(binary)
    lap("item_gram")
    neighbours = cosine_neighbours(gram, params.knn_neighbours)
    lap("co_purchase")
    ease_items, ease_weights = fit_ease(binary, params.ease_lambda, params.ease_max_items, gram)
    del gram
    lap("ease")
    share, item_score = category_model(inter, item_category, len(categories), popular)
    lap("category_affinity")
    due, interval = repurchase_matrices(inter, scores_of(repurchase))  # last: the fit may still be running
    lap("replenishment")
    return FittedStrategies(inter, params, item_category, categories, popular, recent, trending, neighbours,
                            ease_items, ease_weights, binary[:, ease_items].tocsr(), due, interval, share, item_score,
                            timings)


# --- popularity -------------------------------------------------------------------------------

def customer_share(inter: Interactions, days: int) -> np.ndarray:
    """Share of the customers active in the last `days` who bought each item there."""
    table = inter.occasion_table
    window = table[table["age"].to_numpy() <= days].drop_duplicates(["row", "col"])
    active = window["row"].nunique()
    counts = np.bincount(window["col"].to_numpy(), minlength=inter.n_items).astype(np.float32)
    return counts / max(active, 1)


def trending_scores(inter: Interactions, recent_days: int, baseline_days: int) -> np.ndarray:
    """Recent share × log growth of buyers per day against the `baseline_days` before it."""
    table = inter.occasion_table
    age = table["age"].to_numpy()
    pairs = table[["row", "col"]]
    recent = pairs[age <= recent_days].drop_duplicates()
    base = pairs[(age > recent_days) & (age <= recent_days + baseline_days)].drop_duplicates()
    n_recent = np.bincount(recent["col"].to_numpy(), minlength=inter.n_items) / recent_days
    n_base = np.bincount(base["col"].to_numpy(), minlength=inter.n_items) / baseline_days
    growth = np.log((n_recent + 0.1) / (n_base + 0.1))
    share = n_recent * recent_days / max(recent["row"].nunique(), 1)
    return (share * np.clip(growth, 0, None)).astype(np.float32)


# --- co-purchase (item-item cosine kNN) ------------------------------------------------------

def item_gram(binary: sp.csr_matrix) -> sp.csr_matrix:
    """items × items: how many customers bought both (the diagonal: buyers of each item). Sparse: its
    cost is the sum over customers of (distinct items)², not items²."""
    transposed = binary.T.tocsr()
    return (transposed @ binary).tocsr()


def cosine_neighbours(gram: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Item × item cosine similarity keeping, for each target item (column), its k best source items."""
    n_items = gram.shape[0]
    norms = np.sqrt(gram.diagonal()).astype(np.float32)
    norms[norms == 0] = 1.0
    pairs = gram.tocoo()
    off_diagonal = pairs.row != pairs.col
    rows, cols = pairs.row[off_diagonal], pairs.col[off_diagonal]
    sims = pairs.data[off_diagonal].astype(np.float32) / (norms[rows] * norms[cols])
    order = np.lexsort((-sims, cols))           # by target column, best source first
    rows, cols, sims = rows[order], cols[order], sims[order]
    rank = np.arange(len(cols)) - np.searchsorted(cols, np.arange(n_items))[cols]
    keep = rank < k
    return sp.csr_matrix((sims[keep], (rows[keep], cols[keep])), shape=(n_items, n_items), dtype=np.float32)


# --- EASE (Steck 2019) -----------------------------------------------------------------------

def fit_ease(binary: sp.csr_matrix, lam: float, max_items: int,
             gram: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Closed form B = I - P·diag(1/diag(P)), P = (XᵀX + λI)⁻¹, on the `max_items` most-bought items.

    float32 above 4,000 items: the dense inverse of 20,000 items is 1.6 GB instead of 3.2 GB.
    """
    gram = item_gram(binary) if gram is None else gram
    buyers = gram.diagonal()
    bought = np.flatnonzero(buyers > 0)
    items = bought[np.argsort(-buyers[bought], kind="stable")[:max_items]]
    items = np.sort(items)
    if len(items) == 0:
        return items, np.zeros((0, 0), np.float32)
    dtype = np.float64 if len(items) <= 4_000 else np.float32
    dense = gram[items][:, items].toarray().astype(dtype, copy=False)
    dense[np.diag_indices_from(dense)] += lam
    # LU in place: about 4× faster than numpy.linalg.inv here and no second n × n copy
    precision = scipy.linalg.inv(dense, overwrite_a=True, check_finite=False)
    del dense
    diag = np.diag(precision).copy()
    precision /= -diag[None, :]
    precision[np.diag_indices_from(precision)] = 0.0
    return items, precision.astype(np.float32, copy=False)


# --- replenishment ---------------------------------------------------------------------------

def repurchase_matrices(inter: Interactions, scores: RepurchaseScores | None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The repurchase model's probability and the own median gap as customer × item matrices."""
    shape = (inter.n_customers, inter.n_items)
    if scores is None or len(scores.probability) == 0:
        empty = sp.csr_matrix(shape, dtype=np.float32)
        return empty, empty.copy()
    rows = inter.rows_of(scores.customer_ids)
    cols = pd.Index(inter.skus.astype(str)).get_indexer(scores.skus.astype(str))
    ok = (rows >= 0) & (cols >= 0)
    rows, cols = rows[ok], cols[ok]
    # the floor keeps every candidate a candidate (a stored 0 would read as "not a candidate")
    probability = np.maximum(scores.probability[ok], 1e-6).astype(np.float32)
    due = sp.csr_matrix((probability, (rows, cols)), shape=shape)
    interval = sp.csr_matrix((scores.interval_days[ok].astype(np.float32), (rows, cols)), shape=shape)
    return due, interval


# --- category affinity ----------------------------------------------------------------------

def category_model(inter: Interactions, item_category: np.ndarray, n_categories: int,
                   popular: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Customer share of (decayed) purchases per category, and each item's popularity relative to
    the most popular item of its category (plus a floor so every in-category item is a candidate)."""
    known = item_category >= 0
    onehot = sp.csr_matrix((np.ones(known.sum(), np.float32), (np.flatnonzero(known), item_category[known])),
                           shape=(inter.n_items, max(n_categories, 1)))
    weights = inter.decayed @ onehot
    totals = np.asarray(weights.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    share = sp.diags((1.0 / totals).astype(np.float32)) @ weights
    best = np.zeros(max(n_categories, 1), np.float32)
    np.maximum.at(best, item_category[known], popular[known])
    item_score = np.zeros(inter.n_items, np.float32)
    denominator = np.where(best[item_category[known]] > 0, best[item_category[known]], 1.0)
    item_score[known] = 0.01 + popular[known] / denominator
    return share.tocsr().astype(np.float32), item_score


# --- scorers: rows (-1 = unknown customer) → dense block ---------------------------------------

def score_repeat(model: FittedStrategies, rows: np.ndarray) -> np.ndarray:
    block = model.inter.dense_rows(model.inter.decayed, rows)
    if model.params.popularity_exponent:
        block *= np.power(model.recent + 1e-3, model.params.popularity_exponent, dtype=np.float32)
    return block


def score_replenishment(model: FittedStrategies, rows: np.ndarray) -> np.ndarray:
    return model.inter.dense_rows(model.due, rows)


def score_co_purchase(model: FittedStrategies, rows: np.ndarray) -> np.ndarray:
    history = _history(model, rows)
    return np.asarray((history @ model.neighbours).todense(), dtype=np.float32)


def score_ease(model: FittedStrategies, rows: np.ndarray) -> np.ndarray:
    block = np.zeros((len(rows), model.inter.n_items), np.float32)
    known = rows >= 0
    if len(model.ease_items) == 0 or not known.any():
        return block
    scores = np.clip(model.ease_history[rows[known]] @ model.ease_weights, 0, None)
    if len(model.ease_items) == model.inter.n_items and known.all():
        return scores  # ease_items is every column, in order
    block[np.ix_(np.flatnonzero(known), model.ease_items)] = scores
    return block


def score_popular(model: FittedStrategies, rows: np.ndarray) -> np.ndarray:
    return np.tile(model.popular, (len(rows), 1))


def score_trending(model: FittedStrategies, rows: np.ndarray) -> np.ndarray:
    return np.tile(model.trending, (len(rows), 1))


def score_category_affinity(model: FittedStrategies, rows: np.ndarray) -> np.ndarray:
    shares = np.zeros((len(rows), model.category_share.shape[1]), np.float32)
    known = rows >= 0
    if known.any():
        shares[known] = model.category_share[rows[known]].toarray()
    block = np.zeros((len(rows), model.inter.n_items), np.float32)
    has_category = model.item_category >= 0
    block[:, has_category] = shares[:, model.item_category[has_category]] * model.category_item_score[has_category]
    return block


def _history(model: FittedStrategies, rows: np.ndarray) -> sp.csr_matrix:
    """Recency-weighted purchase rows (empty rows for unknown customers), sparse."""
    safe = np.where(rows >= 0, rows, 0)
    history = model.inter.decayed[safe]
    if (rows < 0).any():
        history = sp.diags((rows >= 0).astype(np.float32)) @ history
    return history.tocsr()


SCORERS = {
    "repeat": score_repeat,
    "replenishment": score_replenishment,
    "co_purchase": score_co_purchase,
    "ease": score_ease,
    "popular": score_popular,
    "trending": score_trending,
    "category_affinity": score_category_affinity,
}
