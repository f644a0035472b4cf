"""The customer × product interaction matrices every strategy is fitted on.

A purchase *occasion* is one (customer, product, day): buying the same product twice on one
day, or on several lines of one order, counts once. Frequencies, gaps and recency are all
measured in occasions, so bulk orders do not drown out regular re-orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

@dataclass(frozen=True)
class Interactions:
    """Sparse customer × item matrices (rows follow `customer_ids`, columns follow `skus`)."""

    as_of: pd.Timestamp
    customer_ids: np.ndarray          # int64, sorted: row i is customer_ids[i]
    skus: np.ndarray                  # object array: column j is skus[j]
    occasions: sp.csr_matrix          # float32, number of purchase occasions
    decayed: sp.csr_matrix            # float32, sum over occasions of 0.5 ** (age_days / half_life)
    days_since_last: sp.csr_matrix    # float32, days since the last occasion, stored + 1 so 0 stays explicit
    spend: np.ndarray                 # per customer: mean unit price paid (NaN if unknown)
    occasion_table: pd.DataFrame      # row, col, age (days before as_of), day (= -age): one row per occasion

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)

    @property
    def n_items(self) -> int:
        return len(self.skus)

    def rows_of(self, customer_ids: np.ndarray) -> np.ndarray:
        """Row index of each customer id, -1 for customers without history."""
        ids = np.asarray(customer_ids, dtype=np.int64)
        if self.n_customers == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.customer_ids, ids), self.n_customers - 1)
        return np.where(self.customer_ids[pos] == ids, pos, -1)

    def dense_rows(self, matrix: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Dense float32 block of `matrix` for `rows`; unknown customers (-1) get zeros."""
        known = rows >= 0
        block = np.zeros((len(rows), self.n_items), dtype=np.float32)
        if known.any():
            block[known] = matrix[rows[known]].toarray()
        return block


def build_interactions(lines: pd.DataFrame, as_of: pd.Timestamp, skus: np.ndarray | None = None,
                       half_life_days: float = 180.0) -> Interactions:
    """`lines` needs customer_id, sku, placed_at (and unit_price for the price band).

    `skus` fixes the column order (the catalogue); purchased skus missing from it are appended so
    their co-purchase signal is kept even when they cannot be recommended.
    """
    as_of = pd.Timestamp(as_of)
    lines = lines[lines["placed_at"] < as_of]
    codes, uniques = pd.factorize(lines["sku"], sort=False)
    bought = np.asarray(uniques, dtype=object).astype(str)
    catalogue = np.asarray([] if skus is None else skus, dtype=object).astype(str)
    extra = np.setdiff1d(bought, catalogue)
    all_skus = np.concatenate([catalogue, extra]).astype(object)
    cols = pd.Index(all_skus).get_indexer(bought)[codes]
    customers = lines["customer_id"].to_numpy(np.int64)
    customer_ids = np.unique(customers)
    rows = np.searchsorted(customer_ids, customers)
    today = as_of.to_datetime64().astype("datetime64[D]")
    days = lines["placed_at"].to_numpy("datetime64[ns]").astype("datetime64[D]")
    table = occasions_table(rows, cols, (today - days).astype(np.int64), len(all_skus))

    shape = (len(customer_ids), len(all_skus))
    age = table["age"].to_numpy()
    weights = np.power(np.float32(0.5), age.astype(np.float32) / np.float32(half_life_days))
    occasions = _csr(table["row"], table["col"], np.ones(len(table), np.float32), shape)
    decayed = _csr(table["row"], table["col"], weights, shape)
    # sorted by (row, col, age descending): the last occasion of a pair is its last entry
    pair_rows, pair_cols = table["row"].to_numpy(), table["col"].to_numpy()
    last = np.r_[(pair_rows[1:] != pair_rows[:-1]) | (pair_cols[1:] != pair_cols[:-1]), True] if len(table) else []
    days_since_last = _csr(pair_rows[last], pair_cols[last], age[last] + 1.0, shape)

    spend = np.full(len(customer_ids), np.nan)
    if "unit_price" in lines.columns and len(lines):
        price = lines["unit_price"].to_numpy(float)
        spend = np.bincount(rows, weights=price, minlength=len(customer_ids)) / np.maximum(
            np.bincount(rows, minlength=len(customer_ids)), 1)
    return Interactions(as_of, customer_ids, all_skus, occasions, decayed, days_since_last, spend, table)


def occasions_table(rows: np.ndarray, cols: np.ndarray, age_days: np.ndarray, n_items: int) -> pd.DataFrame:
    """Distinct (row, col, age) sorted by row, col and age descending (oldest occasion first)."""
    if len(rows) == 0:
        return pd.DataFrame({"row": np.zeros(0, np.int64), "col": np.zeros(0, np.int64),
                             "age": np.zeros(0, np.int64), "day": np.zeros(0, np.int64)})
    span = int(age_days.max()) + 1
    # one int64 key per occasion; sorting it orders by row, col, then oldest first
    key = (rows.astype(np.int64) * n_items + cols) * span + (span - 1 - age_days)
    key = np.sort(key)
    key = key[np.r_[True, key[1:] != key[:-1]]]
    age = span - 1 - key % span
    pair = key // span
    return pd.DataFrame({"row": pair // n_items, "col": pair % n_items, "age": age, "day": -age})


def _csr(rows, cols, values, shape) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.asarray(values, np.float32), (np.asarray(rows), np.asarray(cols))), shape=shape)
    matrix.sum_duplicates()
    return matrix


def csr_value(matrix: sp.csr_matrix, row: int, col: int):
    """One element of a CSR matrix (0 where none is stored), without scipy's slow element indexing
    (~25 µs a call; the night asks once per recommended item)."""
    start, end = matrix.indptr[row], matrix.indptr[row + 1]
    columns = matrix.indices[start:end]
    if matrix.has_sorted_indices:
        at = int(np.searchsorted(columns, col))
        found = at < len(columns) and columns[at] == col
    else:
        hits = np.flatnonzero(columns == col)
        at, found = (int(hits[0]), True) if len(hits) else (0, False)
    return matrix.data[start + at] if found else matrix.dtype.type(0)
