"""Who re-buys which product soon: a repurchase model on (customer, product) pairs.

Candidates are the pairs with at least two purchase *occasions* (customer, product, day) before
`as_of`: products the customer buys again and again. For each, the model estimates the probability
that the customer buys that product again within `window_days` after `as_of`.

Training uses history alone. Snapshots at as_of − k·step (k = 1 … `snapshots`) are described with
the features they had then, and labelled with what happened in the `window_days` after each
snapshot, all of it before `as_of` (the last label window ends at as_of − step + window ≤ as_of,
since step ≥ window). A scikit-learn HistGradientBoostingClassifier is fitted on those rows and
scores the pairs as of `as_of`. When history is too short to train (fewer than `min_labels`
positive or negative training rows), a rule stands in: how close the middle of the window is to the
next purchase the pair's own median gap predicts, exp(−½·(log((since + window/2) / gap) / 0.5)²).

Features per pair (all measured before the moment described): occasions, days since the first and
last one, the customer's own median, mean and last gap and their spread (regularity), days since
last over own median / mean / product median gap, the product's median gap over every customer,
quantity trend (last occasion's units over the pair's mean), occasions in the last 90 days, the
customer's order days, distinct products, mean gap between orders and days since any order, the
share of the customer's order days that included the product, and the product's popularity
(buyers in the last 30 days, buyers ever, share of buyers who re-bought it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

FEATURE_NAMES = (
    "occasions", "days_since_last", "days_since_first", "own_median_gap", "own_mean_gap", "last_gap",
    "gap_cv", "since_over_own_median", "since_over_own_mean", "product_median_gap",
    "since_over_product_median", "own_over_product_median", "quantity_trend", "log_mean_quantity",
    "occasions_90d", "customer_order_days", "customer_products", "customer_mean_gap",
    "customer_days_since_last", "share_of_customer_orders", "product_buyers_30d", "product_buyers",
    "product_repeat_share",
)
MIN_PRODUCT_GAPS = 3   # gaps across customers before a product's median gap is used


@dataclass(frozen=True)
class RepurchaseParams:
    """Tuned on the 2011-10-11 split of UCI Online Retail only (docs/recommendations.md)."""

    window_days: int = 14             # "re-buys within this many days"
    snapshots: int = 10               # training snapshots before as_of
    step_days: int = 14               # days between snapshots (≥ window_days: labels never reach as_of)
    max_iter: int = 200               # boosting rounds
    learning_rate: float = 0.03
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 200
    l2_regularization: float = 1.0
    max_train_rows: int = 500_000     # training customers, then rows, are sampled down to this (nightly budget)
    seed: int = 0
    min_labels: int = 20              # fewer positive or negative training rows: the rule instead
    threads: int = 1                  # OpenMP threads for the trees: on a shared, busy machine two
                                      # threads were 25× slower than one (spinning workers), see docs
    snapshot_threads: int = 2         # training snapshots computed at once (numpy, which lets go of the
                                      # GIL: Python threads that wait, never spin); 1 = one after another
    score_threads: int = 2            # candidates scored in this many parts at once (the trees' prediction
                                      # lets go of the GIL; each part on one OpenMP thread, as the fit)

    def __post_init__(self) -> None:
        if self.step_days < self.window_days:
            raise ValueError("step_days must be at least window_days, or training labels would reach as_of")


@dataclass(frozen=True)
class Occasions:
    """One row per purchase occasion, sorted by (customer, item, day)."""

    customer: np.ndarray     # int64 code into customer_ids
    item: np.ndarray         # int64 code into skus
    day: np.ndarray          # int64 day number (days since 1970-01-01)
    quantity: np.ndarray     # float64 units bought on that occasion
    customer_ids: np.ndarray
    skus: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.skus)

    def before(self, day: int) -> "Occasions":
        return self._where(self.day < day)

    def of_customers(self, chosen: np.ndarray) -> "Occasions":
        """The occasions of the customers whose code is True in `chosen`."""
        return self._where(chosen[self.customer])

    def _where(self, keep: np.ndarray) -> "Occasions":
        return Occasions(self.customer[keep], self.item[keep], self.day[keep], self.quantity[keep],
                         self.customer_ids, self.skus)


def occasions_from_lines(lines: pd.DataFrame) -> Occasions:
    """`lines`: customer_id, sku, placed_at[, quantity]. Several lines of one product on one day are
    one occasion (their quantities add up)."""
    customer_codes, customer_ids = pd.factorize(lines["customer_id"].to_numpy(np.int64), sort=True)
    item_codes, skus = pd.factorize(lines["sku"].astype(str), sort=True)
    days = lines["placed_at"].to_numpy("datetime64[ns]").astype("datetime64[D]").astype(np.int64)
    quantity = (pd.to_numeric(lines["quantity"], errors="coerce").fillna(1.0).to_numpy(float)
                if "quantity" in lines.columns else np.ones(len(lines)))
    n_items = max(len(skus), 1)
    first_day = int(days.min()) if len(days) else 0
    span = int(days.max()) - first_day + 1 if len(days) else 1
    key = (customer_codes.astype(np.int64) * n_items + item_codes) * span + (days - first_day)
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    unique = key[starts]
    summed = np.add.reduceat(quantity[order], starts) if len(starts) else np.zeros(0)
    pair = unique // span
    return Occasions(pair // n_items, pair % n_items, unique % span + first_day, summed,
                     np.asarray(customer_ids, np.int64), np.asarray(skus, dtype=object))


# --- features ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairFeatures:
    customer: np.ndarray      # code per candidate pair
    item: np.ndarray
    X: np.ndarray             # float32, len(pairs) × len(FEATURE_NAMES), NaN where unknown

    def column(self, name: str) -> np.ndarray:
        return self.X[:, FEATURE_NAMES.index(name)]


def pair_features(occ: Occasions, at: int, customers: np.ndarray | None = None) -> PairFeatures:
    """Features of every pair with ≥ 2 occasions before day `at`, as seen at the start of that day.
    `customers` (a boolean mask over customer codes) keeps only those customers' pairs; the product
    features are still measured over every customer, and the rest over those customers' occasions
    alone (a training sample of a few percent of a large shop's customers)."""
    o = occ.before(at)
    n_items = max(occ.n_items, 1)
    pairs = _Pairs.of(o, n_items)
    products = _product_features(o, pairs, at, n_items)
    if customers is not None:
        o = o.of_customers(customers)
        pairs = _Pairs.of(o, n_items)
    starts, ends, pair_of, n_pairs = pairs.starts, pairs.ends, pairs.pair_of, pairs.count
    count = pairs.occasions.astype(float)
    first, last = o.day[starts], o.day[ends]
    since = (at - last).astype(float)
    pair_customer, pair_item = o.customer[starts], o.item[starts]

    # gaps between consecutive occasions of a pair (attached to the later occasion)
    later = ~starts
    gap = pairs.gaps[later].astype(float)
    gap_pair = pair_of[later]
    own_median = _group_median(gap_pair, gap.astype(np.int64), n_pairs)
    gap_sum = np.bincount(gap_pair, gap, n_pairs)
    gap_sq = np.bincount(gap_pair, gap * gap, n_pairs)
    n_gaps = count - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        own_mean = gap_sum / n_gaps
        gap_cv = np.sqrt(np.maximum(gap_sq / n_gaps - own_mean ** 2, 0)) / own_mean
    last_gap = np.full(n_pairs, np.nan)
    latest = ends & later      # a pair's last occasion, when it has an earlier one
    last_gap[pair_of[latest]] = pairs.gaps[latest]

    quantity_sum = np.bincount(pair_of, o.quantity, n_pairs)
    mean_quantity = quantity_sum / np.maximum(count, 1)
    recent = np.bincount(pair_of, (at - o.day) <= 90, n_pairs)

    # customer level: distinct order days, rhythm, breadth
    n_customers = max(len(occ.customer_ids), 1)
    customer_days = _distinct_days(o.customer, o.day, n_customers)
    c_first = np.full(n_customers, np.iinfo(np.int64).max)
    c_last = np.full(n_customers, np.iinfo(np.int64).min)
    np.minimum.at(c_first, pair_customer, first)
    np.maximum.at(c_last, pair_customer, last)
    products_per_customer = np.bincount(pair_customer, minlength=n_customers).astype(float)

    keep = count >= 2
    c = pair_customer[keep]
    i = pair_item[keep]
    cd = customer_days[c]
    product_median, buyers, buyers_30d, repeaters = products
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = {
            "occasions": count[keep],
            "days_since_last": since[keep],
            "days_since_first": (at - first[keep]).astype(float),
            "own_median_gap": own_median[keep],
            "own_mean_gap": own_mean[keep],
            "last_gap": last_gap[keep],
            "gap_cv": gap_cv[keep],
            "since_over_own_median": since[keep] / own_median[keep],
            "since_over_own_mean": since[keep] / own_mean[keep],
            "product_median_gap": product_median[i],
            "since_over_product_median": since[keep] / product_median[i],
            "own_over_product_median": own_median[keep] / product_median[i],
            "quantity_trend": _last_quantity(o.quantity, ends)[keep] / mean_quantity[keep],
            "log_mean_quantity": np.log1p(np.maximum(mean_quantity[keep], 0)),
            "occasions_90d": recent[keep],
            "customer_order_days": cd,
            "customer_products": products_per_customer[c],
            "customer_mean_gap": np.where(cd > 1, (c_last[c] - c_first[c]) / np.maximum(cd - 1, 1), np.nan),
            "customer_days_since_last": (at - c_last[c]).astype(float),
            "share_of_customer_orders": count[keep] / cd,
            "product_buyers_30d": buyers_30d[i],
            "product_buyers": buyers[i],
            "product_repeat_share": repeaters[i] / buyers[i],
        }
    X = np.empty((int(keep.sum()), len(FEATURE_NAMES)), np.float32)
    for j, name in enumerate(FEATURE_NAMES):
        X[:, j] = columns[name]
    return PairFeatures(c, i, X)


@dataclass(frozen=True)
class _Pairs:
    """Where each (customer, product) pair's occasions start and end in sorted Occasions, and the
    gap in days from each occasion to the one before it (meaningful where it is not a pair's first)."""

    starts: np.ndarray   # bool per occasion: a pair's first
    ends: np.ndarray     # bool per occasion: a pair's last
    pair_of: np.ndarray  # pair number per occasion
    count: int           # pairs
    occasions: np.ndarray  # occasions per pair
    gaps: np.ndarray

    @classmethod
    def of(cls, o: Occasions, n_items: int) -> "_Pairs":
        key = o.customer * n_items + o.item
        starts = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
        ends = np.r_[key[1:] != key[:-1], True] if len(key) else np.zeros(0, bool)
        pair_of = np.cumsum(starts) - 1
        count = int(starts.sum())
        return cls(starts, ends, pair_of, count, np.bincount(pair_of, minlength=count), np.diff(o.day, prepend=0))


def _product_features(o: Occasions, pairs: _Pairs, at: int, n_items: int) -> tuple[np.ndarray, ...]:
    """Per product, over every customer: median gap between re-buys (NaN under MIN_PRODUCT_GAPS gaps),
    buyers, buyers in the last 30 days, and buyers who bought it on two or more days."""
    later = ~pairs.starts
    product_median = _group_median(o.item[later], pairs.gaps[later], n_items)
    product_median[np.bincount(o.item[later], minlength=n_items) < MIN_PRODUCT_GAPS] = np.nan
    pair_item = o.item[pairs.starts]
    buyers = np.bincount(pair_item, minlength=n_items).astype(float)
    buyers_30d = np.bincount(pair_item, (at - o.day[pairs.ends]) <= 30, n_items)
    repeaters = np.bincount(pair_item, pairs.occasions >= 2, n_items)
    return product_median, buyers, buyers_30d, repeaters


def _group_median(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of non-negative integer `values` (gaps in days) per group code (NaN for empty groups),
    by sorting one int64 key (several times faster than a two-key lexsort)."""
    out = np.full(n_groups, np.nan)
    if len(values) == 0:
        return out
    values = values.astype(np.int64)
    width = int(values.max()) + 1
    key = np.sort(group.astype(np.int64) * width + values)
    v = key % width
    counts = np.bincount(group, minlength=n_groups)
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    has = counts > 0
    low = offsets[has] + (counts[has] - 1) // 2
    high = offsets[has] + counts[has] // 2
    out[has] = (v[low] + v[high]) / 2.0
    return out


def _distinct_days(customer: np.ndarray, day: np.ndarray, n_customers: int) -> np.ndarray:
    if len(day) == 0:
        return np.zeros(n_customers)
    span = int(day.max()) - int(day.min()) + 1
    unique = pd.unique(customer * span + (day - int(day.min())))
    return np.bincount(unique // span, minlength=n_customers).astype(float)


def _last_quantity(quantity: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return quantity[ends]


def labels(occ: Occasions, features: PairFeatures, start: int, window_days: int) -> np.ndarray:
    """1 where the pair has an occasion in [start, start + window_days)."""
    inside = (occ.day >= start) & (occ.day < start + window_days)
    n_items = max(occ.n_items, 1)
    bought = np.unique(occ.customer[inside] * n_items + occ.item[inside])
    return np.isin(features.customer * n_items + features.item, bought).astype(np.int8)


# --- model -------------------------------------------------------------------------------------

@dataclass
class RepurchaseScores:
    """Probability of re-buying within `window_days` after `as_of`, per candidate pair."""

    as_of_day: int
    window_days: int
    customer_ids: np.ndarray   # customer id per pair
    skus: np.ndarray           # sku per pair
    probability: np.ndarray    # float64
    interval_days: np.ndarray  # the customer's own median gap for the product (what the reason tells)
    features: PairFeatures
    method: str                # "model" or "rule" (too little history to train)
    training: dict = field(default_factory=dict)   # rows, positives, snapshot days, label windows
    timings: dict = field(default_factory=dict)

    def per_customer_max(self) -> pd.Series:
        frame = pd.Series(self.probability).groupby(self.customer_ids).max()
        frame.index.name = "customer_id"
        return frame


def training_set(occ: Occasions, as_of_day: int, params: RepurchaseParams) -> tuple[np.ndarray, np.ndarray, list]:
    """Rows from snapshots before `as_of_day`; every label window ends on or before it."""
    customers = _training_customers(occ, as_of_day, params)

    def snapshot_rows(k: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
        start = as_of_day - k * params.step_days
        assert start + params.window_days <= as_of_day
        snapshot = pair_features(occ, start, customers)
        if len(snapshot.X) == 0:
            return None
        return snapshot.X, labels(occ, snapshot, start, params.window_days), (start, start + params.window_days)

    with ThreadPoolExecutor(max(1, params.snapshot_threads)) as pool:  # in snapshot order, whatever finishes first
        parts = [part for part in pool.map(snapshot_rows, range(1, params.snapshots + 1)) if part is not None]
    parts_x, parts_y, windows = [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts]
    if not parts_x:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0, np.int8), windows
    return np.concatenate(parts_x), np.concatenate(parts_y), windows


def _training_customers(occ: Occasions, as_of_day: int, params: RepurchaseParams) -> np.ndarray | None:
    """A seeded sample of customers when every snapshot in full would exceed `max_train_rows`
    (estimated from the pairs with 2+ occasions now): computing features for rows that are then
    thrown away cost most of the fit on 1M customers. None = everyone."""
    o = occ.before(as_of_day)
    key = o.customer * max(occ.n_items, 1) + o.item
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    pairs_with_repeats = int((np.diff(np.r_[starts, len(key)]) >= 2).sum())
    expected = pairs_with_repeats * params.snapshots
    if expected <= params.max_train_rows:
        return None
    share = params.max_train_rows / expected
    return np.random.default_rng(params.seed).random(len(occ.customer_ids)) < share


def fit_repurchase(lines: pd.DataFrame, as_of: pd.Timestamp,
                   params: RepurchaseParams = RepurchaseParams()) -> RepurchaseScores:
    """Train on history before `as_of` (lines at or after it are ignored) and score its candidates."""
    as_of = pd.Timestamp(as_of)
    used = [c for c in ("customer_id", "sku", "placed_at", "quantity") if c in lines.columns]
    occ = occasions_from_lines(lines.loc[(lines["placed_at"] < as_of).to_numpy(), used])  # no copy of other columns
    as_of_day = int(as_of.to_datetime64().astype("datetime64[D]").astype(np.int64))
    if as_of > as_of.normalize():   # mid-day: today's purchases so far are history too
        as_of_day += 1
    return score_occasions(occ, as_of_day, params)


def score_occasions(occ: Occasions, as_of_day: int, params: RepurchaseParams = RepurchaseParams()) -> RepurchaseScores:
    """Fit on the occasions before `as_of_day` (later ones are dropped first) and score that day.
    Tonight's candidates are described in a thread beside the fit (numpy and the trees both let go
    of the GIL; the fit keeps to one core by default), not after it."""
    occ = occ.before(as_of_day)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with _timed(timings, "training_features"):
        X_train, y_train, windows = training_set(occ, as_of_day, params)
    training = {"rows": int(len(y_train)), "positives": int(y_train.sum()),
                "label_windows": [(int(a), int(b)) for a, b in windows]}
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: F401 (loads its OpenMP runtime, so
    # that threadpool_limits below sees and caps it; imported here because it takes a second)
    with ThreadPoolExecutor(1, thread_name_prefix="lojal-repurchase") as pool, threadpool_limits(params.threads):
        tonight = pool.submit(_timed_call, timings, "features", pair_features, occ, as_of_day)
        with _timed(timings, "fit", cpu=time.thread_time):  # its thread: the whole fit on one OpenMP thread
            model = _fit_classifier(X_train, y_train, params)
        now = tonight.result()
        with _timed(timings, "score"):
            if model is None:
                method = "rule"
                probability = rule_probability(now, params.window_days)
            else:
                method = "model"
                probability = _predict(model, now.X, params.score_threads)
    timings["total"] = time.perf_counter() - started
    return RepurchaseScores(as_of_day, params.window_days, occ.customer_ids[now.customer], occ.skus[now.item],
                            probability.astype(float), now.column("own_median_gap").astype(float), now, method,
                            training, timings)


def _predict(model, X: np.ndarray, threads: int) -> np.ndarray:
    """P(class 1) per row of X, in `threads` contiguous parts scored at once (rows are independent:
    the same values as one call)."""
    if len(X) == 0:
        return np.zeros(0)
    parts = np.array_split(X, max(1, min(threads, len(X))))
    with ThreadPoolExecutor(len(parts)) as pool:
        return np.concatenate([p[:, 1] for p in pool.map(model.predict_proba, parts)])


# The night's fit as made, or a function returning it when it is needed (prepare_night fits it in a
# thread beside the features and the other strategies, which wait for it only where they use it).
RepurchaseFit = RepurchaseScores | Callable[[], RepurchaseScores]


def scores_of(fit: RepurchaseFit | None) -> RepurchaseScores | None:
    return fit() if callable(fit) else fit


def rule_probability(features: PairFeatures, window_days: int) -> np.ndarray:
    """The stand-in for shops with too little history: a bell around "the next purchase the own
    median gap predicts falls in the middle of the window"."""
    since = features.column("days_since_last").astype(float)
    gap = np.maximum(features.column("own_median_gap").astype(float), 1.0)
    return np.exp(-0.5 * (np.log((since + window_days / 2) / gap) / 0.5) ** 2)


@contextmanager
def _timed(timings: dict[str, float], name: str, cpu: Callable[[], float] = time.process_time):
    """Wall seconds under `name`, CPU seconds under `name`_cpu (this process's, or what `cpu` counts:
    time.thread_time for the calling thread's alone, while another thread works beside it)."""
    start, used = time.perf_counter(), cpu()
    yield
    timings[name] = time.perf_counter() - start
    timings[f"{name}_cpu"] = cpu() - used


def _timed_call(timings: dict[str, float], name: str, function: Callable, *args):
    """`function(*args)`, timed under `name` with its own thread's CPU (run in a thread of its own)."""
    with _timed(timings, name, cpu=time.thread_time):
        return function(*args)


def _fit_classifier(X: np.ndarray, y: np.ndarray, params: RepurchaseParams):
    """HistGradientBoostingClassifier, or None with fewer than `min_labels` rows of either class."""
    positives = int(y.sum())
    if min(positives, len(y) - positives) < max(params.min_labels, 1):
        return None
    from sklearn.ensemble import HistGradientBoostingClassifier

    if len(y) > params.max_train_rows:
        pick = np.random.default_rng(params.seed).choice(len(y), params.max_train_rows, replace=False)
        X, y = X[pick], y[pick]
    model = HistGradientBoostingClassifier(
        max_iter=params.max_iter, learning_rate=params.learning_rate, max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=min(params.min_samples_leaf, max(len(y) // 20, 1)),
        l2_regularization=params.l2_regularization, early_stopping=False, random_state=params.seed)
    return model.fit(X, y)
