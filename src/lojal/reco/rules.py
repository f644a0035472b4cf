"""Business rules, applied after scoring: masks over a dense score block, and the greedy pick that
enforces per-category diversity and de-duplication across slots."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

NOT_ALLOWED = -np.inf


def sellable_items(products: pd.DataFrame, skus: np.ndarray) -> np.ndarray:
    """Items that may appear in an e-mail: in the catalogue, in stock, with an image and a price > 0."""
    catalogue = products.reindex(pd.Index(skus.astype(str)))
    image = catalogue["image_url"].fillna("").astype(str).str.strip() != ""
    price = pd.to_numeric(catalogue["price"], errors="coerce").fillna(0) > 0
    in_stock = catalogue["in_stock"].fillna(False).astype(bool)
    return (in_stock & image & price).to_numpy(bool)


def mask_items(scores: np.ndarray, allowed: np.ndarray) -> None:
    """Forbid items where `allowed` (items, or rows × items) is False."""
    scores[~np.broadcast_to(allowed, scores.shape)] = NOT_ALLOWED


def mask_triggers(scores: np.ndarray, trigger_cols: Sequence[Iterable[int]]) -> None:
    """Never the item(s) that triggered the e-mail: one list of item columns per row."""
    for row, cols in enumerate(trigger_cols):
        cols = [c for c in cols if c >= 0]
        if cols:
            scores[row, cols] = NOT_ALLOWED


def mask_bought_within(scores: np.ndarray, days_since_last: sp.csr_matrix, rows: np.ndarray,
                       days: float | None) -> None:
    """Forbid what each customer bought within `days` (None: ever bought). `days_since_last` stores
    days + 1 so a purchase today is an explicit entry."""
    known = np.flatnonzero(rows >= 0)
    if len(known) == 0 or days == 0:
        return
    sub = days_since_last[rows[known]].tocoo()
    hit = np.ones(len(sub.data), bool) if days is None else sub.data - 1 < days
    scores[known[sub.row[hit]], sub.col[hit]] = NOT_ALLOWED


def price_band_allowed(average_price: np.ndarray, item_price: np.ndarray, band: float | None) -> np.ndarray:
    """rows × items: the item's price is within ±band of the customer's average item price.
    Customers without a known average are not restricted."""
    allowed = np.ones((len(average_price), len(item_price)), bool)
    if band is None:
        return allowed
    known = np.isfinite(average_price) & (average_price > 0)
    low = average_price[known, None] * (1 - band)
    high = average_price[known, None] * (1 + band)
    allowed[known] = (item_price[None, :] >= low) & (item_price[None, :] <= high)
    return allowed


def boost_margin(scores: np.ndarray, margin: np.ndarray | None, boost: float) -> None:
    """Multiply positive scores by (1 + boost × margin): a tie-breaker toward profitable items that
    keeps the strategy's own order when margins are similar."""
    if margin is None or boost == 0:
        return
    positive = scores > 0
    factor = np.broadcast_to(1 + boost * np.nan_to_num(margin, nan=0.0).astype(np.float32), scores.shape)
    scores[positive] *= factor[positive]


def top_candidates(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best `k` columns per row (argpartition, then sort only those); invalid ones carry score <= 0."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((len(scores), 0), np.int64), np.zeros((len(scores), 0), np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


class Picker:
    """One customer's e-mail being filled: de-duplicates and caps items per category."""

    def __init__(self, item_category: np.ndarray, max_per_category: int | None):
        self.item_category = item_category
        self.max_per_category = max_per_category
        self.items: list[int] = []
        self.strategies: list[str] = []
        self.per_category: dict[int, int] = {}

    def accepts(self, item: int) -> bool:
        if item in self.items:
            return False
        category = int(self.item_category[item])
        if self.max_per_category is None or category < 0:
            return True
        return self.per_category.get(category, 0) < self.max_per_category

    def take(self, candidates: np.ndarray, scores: np.ndarray, count: int, strategy: str) -> int:
        """Take up to `count` acceptable candidates in order; returns how many were taken."""
        taken = 0
        for item, score in zip(candidates, scores):
            if taken == count:
                break
            if score <= 0 or not np.isfinite(score):
                break
            if self.accepts(int(item)):
                self._add(int(item), strategy)
                taken += 1
        return taken

    def _add(self, item: int, strategy: str) -> None:
        self.items.append(item)
        self.strategies.append(strategy)
        category = int(self.item_category[item])
        if category >= 0:
            self.per_category[category] = self.per_category.get(category, 0) + 1


def trigger_columns(trigger_skus: Mapping[int, Sequence[str]] | None, customer_ids: Sequence[int],
                    column_of: pd.Index) -> list[list[int]]:
    if not trigger_skus:
        return [[] for _ in customer_ids]
    return [list(column_of.get_indexer([str(s) for s in trigger_skus.get(int(c), ())])) for c in customer_ids]
