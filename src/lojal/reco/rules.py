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
    """Each row's best `k` columns with a positive score, best first, equal scores by column (which
    of several equal scores at the k-th place is kept is not specified). Rows with fewer are padded
    with item -1 and score -inf: non-positive scores are never candidates.

    A full argpartition of a 1,000 × 20,000 block costs 0.1-0.2 s, and most blocks need far less: a
    repeat row has a handful of positive scores, and popular, trending or EASE rows share their best
    columns. So short rows are read off their positives; the other rows keep only the columns at or
    above a per-row threshold, the k-th best among a probe of columns (a lower bound for the row's
    own k-th best, so nothing is lost); argpartition is left for rows the probe does not narrow."""
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    items = np.full((n_rows, k), -1, np.int64)
    values = np.full((n_rows, k), NOT_ALLOWED, np.float32)
    if k == 0 or n_rows == 0:
        return items, values
    positive = scores > 0
    short = np.count_nonzero(positive, axis=1) <= k
    long_rows = np.flatnonzero(~short)
    if 2 * len(long_rows) > n_rows:  # mostly long: work on the block itself rather than a copy
        _fill_long_rows(items, values, np.arange(n_rows), scores, ~short, k)
    elif len(long_rows):
        _fill_long_rows(items, values, long_rows, scores[long_rows], np.ones(len(long_rows), bool), k)
    if short.all():
        _fill_from_mask(items, values, np.arange(n_rows), scores, positive, k)
    elif short.any():
        rows = np.flatnonzero(short)
        items[rows], values[rows] = -1, NOT_ALLOWED
        _fill_from_mask(items, values, rows, scores[rows], positive[rows], k)
    return items, values


def _fill_long_rows(items: np.ndarray, values: np.ndarray, rows: np.ndarray, block: np.ndarray,
                    long: np.ndarray, k: int) -> None:
    """The best k of the block's `long` rows (more than k positive scores) into items/values at
    `rows`; what is written for other rows is overwritten by the caller."""
    sample = block[np.flatnonzero(long)[:64]]
    probe = _probe_columns(sample, k)
    if _too_wide(sample >= _kth_best(sample, probe, k)[:, None], k).mean() > 0.5:  # no narrowing here
        items[rows], values[rows] = _top_by_partition(block, k)
        return
    above = block >= _kth_best(block, probe, k)[:, None]
    above[~long] = False
    wide = _too_wide(above, k) & long
    if wide.any():
        above[wide] = False
        fallback = np.flatnonzero(wide)
        items[rows[fallback]], values[rows[fallback]] = _top_by_partition(block[fallback], k)
    _fill_from_mask(items, values, rows, block, above, k)


_PROBE_PER_K = 4              # strongest columns probed per wanted item
_SAMPLE_PER_K = 16            # plus an even spread of columns, for rankings that differ per row
_MAX_CANDIDATES_PER_K = 4     # more columns above a row's threshold than this: argpartition


def _too_wide(above: np.ndarray, k: int) -> np.ndarray:
    """Rows whose threshold let through fewer than k columns (no usable probe) or far more (ties)."""
    passed = np.count_nonzero(above, axis=1)
    return (passed < k) | (passed > _MAX_CANDIDATES_PER_K * k)


def _probe_columns(sample: np.ndarray, k: int) -> np.ndarray:
    """Columns to probe for thresholds: the sample rows' strongest (for rankings shared by all rows)
    and an even spread (for rankings of each row's own)."""
    n_cols = sample.shape[1]
    strongest = np.argpartition(-sample.max(axis=0), min(n_cols, _PROBE_PER_K * k) - 1)[:_PROBE_PER_K * k]
    spread = np.arange(0, n_cols, max(1, n_cols // (_SAMPLE_PER_K * k)))
    return np.union1d(strongest, spread)


def _kth_best(block: np.ndarray, probe: np.ndarray, k: int) -> np.ndarray:
    """Per row, the k-th best score among the probe columns: a lower bound for the row's own k-th
    best. +inf where the probe holds fewer than k positives, so that no column passes and the row
    falls back to argpartition."""
    kth = -np.partition(-block[:, probe], k - 1, axis=1)[:, k - 1]
    return np.where(kth > 0, kth, np.inf).astype(block.dtype)


def _fill_from_mask(items: np.ndarray, values: np.ndarray, rows: np.ndarray, block: np.ndarray,
                    mask: np.ndarray, k: int) -> None:
    """Write each row's best `k` masked columns, best first, into items/values at `rows`."""
    columns = np.flatnonzero(mask.any(axis=0))  # nonzero() over the whole block would dominate
    r, c = np.nonzero(mask[:, columns])
    c = columns[c]
    v = block[r, c]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r)
    keep = rank < k
    items[rows[r[keep]], rank[keep]] = c[keep]
    values[rows[r[keep]], rank[keep]] = v[keep]


def _top_by_partition(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    part = np.argpartition(-block, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(block, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


class Picker:
    """One customer's e-mail being filled: de-duplicates and caps items per category."""

    def __init__(self, item_category: np.ndarray, max_per_category: int | None):
        self.item_category = item_category
        self.max_per_category = max_per_category
        self.items: list[int] = []
        self.strategies: list[str] = []
        self.scores: list[float] = []
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
                self.scores.append(float(score))
                taken += 1
        return taken

    def _add(self, item: int, strategy: str) -> None:
        self.items.append(item)
        self.strategies.append(strategy)
        category = int(self.item_category[item])
        if category >= 0:
            self.per_category[category] = self.per_category.get(category, 0) + 1


def trigger_columns(trigger_skus: Mapping[int, Sequence[str]] | None, customer_ids: Sequence[int],
                    column_of: Mapping[str, int]) -> list[list[int]]:
    """Each customer's trigger SKUs as columns (-1: not in the interactions). `column_of`: column by
    SKU, a dict (an Index lookup per customer built a string array each time: 5.2 of 92 s in a
    profile of recording a 1M-customer night)."""
    if not trigger_skus:
        return [[] for _ in customer_ids]
    return [[column_of.get(str(s), -1) for s in trigger_skus.get(int(c), ())] for c in customer_ids]
