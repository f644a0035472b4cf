"""Fit once per run, then fill each e-mail's recommendation slots for a batch of customers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from lojal.reco import rules
from lojal.reco.matrix import build_interactions, csr_value
from lojal.reco.reasons import REASON_OF_STRATEGY, reason_text, reorder_reason
from lojal.reco.repurchase import RepurchaseFit, fit_repurchase
from lojal.reco.spec import RecommendationSpec
from lojal.reco.strategies import (DISCOVERY_STRATEGIES, REPEAT_STRATEGIES, FittedStrategies, RecoParams,
                                   fit_strategies)
from lojal.store.shopdata import ShopData

PRODUCT_FIELDS = ["title", "category", "price", "currency", "image_url", "product_url", "in_stock"]


@dataclass(frozen=True)
class Recommendation:
    sku: str
    title: str
    category: str
    price: float
    currency: str
    image_url: str
    product_url: str
    strategy: str
    slot: int
    reason_code: str
    reason_params: dict
    reason: str
    score: float = 0.0  # the strategy's score (recorded with the send, lojal ledger show)

    def to_context(self) -> dict:
        """Plain dict for templates (reason_params copied so templates cannot alter the original)."""
        # A shallow copy: `asdict` deep-copies every field and cost ~0.1 ms per item per e-mail.
        context = {name: getattr(self, name) for name in _RECOMMENDATION_FIELDS}
        context["reason_params"] = dict(self.reason_params)
        return context


_RECOMMENDATION_FIELDS = tuple(f.name for f in fields(Recommendation))


@dataclass(frozen=True)
class Blend:
    """What to rank: (strategy, count) slots, fallbacks for the shortfall, and the business rules.
    `RecommendationSpec` is the campaign-facing form; evaluation builds blends of any size."""

    slots: tuple[tuple[str, int], ...]
    fallbacks: tuple[str, ...] = ("popular", "trending")
    exclude_bought_within_days: int | None = 30
    max_per_category: int | None = 2
    price_band: float | None = None
    margin_boost: float = 0.0

    @property
    def total(self) -> int:
        return sum(count for _, count in self.slots)

    @classmethod
    def from_spec(cls, spec: RecommendationSpec) -> "Blend":
        return cls(tuple((s.strategy, s.count) for s in spec.slots), tuple(spec.fallbacks),
                   spec.exclude_bought_within_days, spec.max_per_category, spec.price_band, spec.margin_boost)


@dataclass(frozen=True)
class Pick:
    item: int
    strategy: str
    score: float = 0.0  # the strategy's score of the item for this customer


class Recommender:
    """Fitted strategies plus the catalogue the business rules need."""

    def __init__(self, model: FittedStrategies, catalogue: pd.DataFrame, sellable: np.ndarray,
                 margin: np.ndarray | None = None):
        self.model = model
        self.catalogue = catalogue            # indexed like model.inter.skus
        self.sellable = sellable
        self.item_price = pd.to_numeric(catalogue["price"], errors="coerce").to_numpy(float)
        self.margin = margin
        self.column_of = pd.Index(model.inter.skus.astype(str))
        self._column_by_sku = {sku: column for column, sku in enumerate(self.column_of)}
        self._neighbours_csc = model.neighbours.tocsc()
        self._text_fields = {f: [_text(v) for v in catalogue[f]] for f in
                             ("title", "category", "currency", "image_url", "product_url")}
        self._products: dict[int, dict] = {}

    # -- the pipeline's entry point ----------------------------------------------------------
    def recommend(self, customer_ids: Sequence[int] | np.ndarray, spec: RecommendationSpec,
                  features: pd.DataFrame | None = None,
                  trigger_skus: Mapping[int, Sequence[str]] | None = None,
                  allowed: np.ndarray | None = None) -> dict[int, list[Recommendation]]:
        """Products per customer for one campaign. `features` is accepted for the pipeline's
        contract; the strategies work from purchase history alone. `allowed` (a mask over
        `column_of`, e.g. the products sold in the customers' market) narrows what may be shown."""
        ids = [int(c) for c in customer_ids]
        picks = self.rank(ids, Blend.from_spec(spec), trigger_skus, allowed=allowed)
        rows = self.model.inter.rows_of(np.asarray(ids, dtype=np.int64)) if ids else np.zeros(0, np.int64)
        return {cid: [self._describe(row, pick, slot) for slot, pick in enumerate(customer_picks, start=1)]
                for cid, row, customer_picks in zip(ids, rows, picks)}

    # -- ranking (shared with the offline evaluation) ----------------------------------------
    def rank(self, customer_ids: Sequence[int] | np.ndarray, blend: Blend,
             trigger_skus: Mapping[int, Sequence[str]] | None = None, chunk_size: int = 1_000,
             allowed: np.ndarray | None = None) -> list[list[Pick]]:
        ids = np.asarray(customer_ids, dtype=np.int64)
        result: list[list[Pick]] = []
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start:start + chunk_size]
            result.extend(self._rank_chunk(chunk, blend, trigger_skus, allowed))
        return result

    def _rank_chunk(self, ids: np.ndarray, blend: Blend,
                    trigger_skus: Mapping[int, Sequence[str]] | None,
                    allowed: np.ndarray | None = None) -> list[list[Pick]]:
        rows = self.model.inter.rows_of(ids)
        triggers = rules.trigger_columns(trigger_skus, ids, self._column_by_sku)
        # room for what de-duplication and the category cap skip before the next strategy takes over
        width = 4 * blend.total + 50
        needed = list(dict.fromkeys([s for s, _ in blend.slots] + list(blend.fallbacks)))
        candidates = {s: rules.top_candidates(self._allowed_scores(s, rows, triggers, blend, allowed), width)
                      for s in needed}
        picks = []
        for r in range(len(ids)):
            picker = rules.Picker(self.model.item_category, blend.max_per_category)
            carry = 0
            for strategy, count in blend.slots:
                items, scores = candidates[strategy]
                need = count + carry
                carry = need - picker.take(items[r], scores[r], need, strategy)
            for strategy in blend.fallbacks:
                if carry == 0:
                    break
                items, scores = candidates[strategy]
                carry -= picker.take(items[r], scores[r], carry, strategy)
            picks.append([Pick(i, s, v) for i, s, v in zip(picker.items, picker.strategies, picker.scores)])
        return picks

    def _allowed_scores(self, strategy: str, rows: np.ndarray, triggers: list[list[int]], blend: Blend,
                        allowed: np.ndarray | None = None) -> np.ndarray:
        scores = self.model.score(strategy, rows)
        rules.mask_items(scores, self.sellable)
        if allowed is not None:
            rules.mask_items(scores, allowed)
        rules.mask_triggers(scores, triggers)
        if strategy in DISCOVERY_STRATEGIES:
            rules.mask_bought_within(scores, self.model.inter.days_since_last, rows, None)
        elif strategy not in REPEAT_STRATEGIES and blend.exclude_bought_within_days:
            rules.mask_bought_within(scores, self.model.inter.days_since_last, rows, blend.exclude_bought_within_days)
        if blend.price_band is not None:
            average = np.where(rows >= 0, self.model.inter.spend[np.maximum(rows, 0)], np.nan)
            rules.mask_items(scores, rules.price_band_allowed(average, self.item_price, blend.price_band))
        rules.boost_margin(scores, self.margin, blend.margin_boost)
        return scores

    # -- reasons ----------------------------------------------------------------------------
    def _describe(self, row: int, pick: Pick, slot: int) -> Recommendation:
        code = REASON_OF_STRATEGY[pick.strategy]
        params = self._reason_params(code, row, pick.item)
        if code == "reorder_due":
            code, params = reorder_reason(params["days"], params["product"])
        return Recommendation(strategy=pick.strategy, slot=slot, reason_code=code, reason_params=params,
                              reason=reason_text(code, params), score=pick.score, **self._product(pick.item))

    def _product(self, item: int) -> dict:
        """The item's sku, price and texts, made once per item (a night describes the same products
        for hundreds of thousands of customers)."""
        fields = self._products.get(item)
        if fields is None:
            fields = {"sku": str(self.model.inter.skus[item]), "price": float(self.item_price[item]),
                      **{f: values[item] for f, values in self._text_fields.items()}}
            self._products[item] = fields
        return fields

    def _reason_params(self, code: str, row: int, item: int) -> dict:
        inter = self.model.inter
        if code == "bought_before":
            return {"times": int(csr_value(inter.occasions, row, item))}
        if code == "reorder_due":
            return {"days": float(csr_value(self.model.interval_days, row, item)), "product": self._title(item)}
        if code == "bought_together":
            return {"product": self._title(self._source_item(row, item))}
        if code == "favourite_category":
            return {"category": self._text_fields["category"][item]}
        return {}

    def _source_item(self, row: int, item: int) -> int:
        """The customer's own item that contributed most to a co-purchase score."""
        decayed = self.model.inter.decayed
        bought = slice(decayed.indptr[row], decayed.indptr[row + 1])
        sources = slice(self._neighbours_csc.indptr[item], self._neighbours_csc.indptr[item + 1])
        common, in_history, in_sources = np.intersect1d(
            decayed.indices[bought], self._neighbours_csc.indices[sources], return_indices=True)
        contribution = decayed.data[bought][in_history] * self._neighbours_csc.data[sources][in_sources]
        return int(common[np.argmax(contribution)])

    def _title(self, item: int) -> str:
        title = self._text_fields["title"][item]
        return title or str(self.model.inter.skus[item])


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA else str(value)


def fit_recommender(data: ShopData, params: RecoParams = RecoParams(),
                    repurchase: RepurchaseFit | None = None) -> Recommender:
    """Fit every strategy on `data.lines` (history before `data.as_of`) and `data.products`.
    `repurchase`: the night's repurchase fit with `params.repurchase` when made already (or a function
    returning it, called once the other strategies are fitted)."""
    products = data.products
    lines = data.lines[["customer_id", "sku", "placed_at", "quantity", "unit_price", "category"]]
    if "amount" in data.lines.columns:  # unit prices in the shop's currency (amount is), like products.price
        lines = lines.assign(unit_price=data.lines["amount"] / data.lines["quantity"].where(data.lines["quantity"] != 0))
    inter = build_interactions(lines, data.as_of, products.index.to_numpy(), params.half_life_days)
    catalogue = _catalogue(products, inter.skus, lines)
    sellable = rules.sellable_items(products, inter.skus)
    margin = pd.to_numeric(catalogue["margin"], errors="coerce").to_numpy(float) if "margin" in catalogue else None
    if repurchase is None:
        repurchase = fit_repurchase(lines, data.as_of, params.repurchase)
    return _fit(inter, catalogue, sellable, params, margin, repurchase)


def fit_on_history(lines: pd.DataFrame, as_of: pd.Timestamp, params: RecoParams = RecoParams()) -> Recommender:
    """Fit on bare order lines (customer_id, sku, placed_at[, quantity, unit_price, category]) with no catalogue:
    every purchased item is recommendable. Used by the offline evaluation."""
    inter = build_interactions(lines, as_of, None, params.half_life_days)
    index = pd.Index(inter.skus.astype(str))
    category = (lines.drop_duplicates("sku", keep="last").set_index("sku")["category"].reindex(index)
                if "category" in lines.columns else pd.Series(None, index=index, dtype=object))
    catalogue = pd.DataFrame({"title": index, "category": category.to_numpy(), "price": np.nan,
                              "currency": "", "image_url": "", "product_url": ""}, index=index)
    repurchase = fit_repurchase(lines, as_of, params.repurchase)
    return _fit(inter, catalogue, np.ones(inter.n_items, bool), params, None, repurchase)


def _fit(inter, catalogue: pd.DataFrame, sellable: np.ndarray, params: RecoParams,
         margin: np.ndarray | None, repurchase) -> Recommender:
    category = catalogue["category"]
    codes, names = pd.factorize(category, use_na_sentinel=True)
    model = fit_strategies(inter, codes.astype(np.int64), np.asarray(names, dtype=object), params, repurchase)
    return Recommender(model, catalogue, sellable, margin)


def _catalogue(products: pd.DataFrame, skus: np.ndarray, lines: pd.DataFrame) -> pd.DataFrame:
    """Product metadata aligned to the matrix columns; skus sold but no longer in the catalogue keep
    the category their order lines carried."""
    index = pd.Index(skus.astype(str))
    fields = [c for c in products.columns if c in PRODUCT_FIELDS or c == "margin"]
    catalogue = products[fields].copy()
    catalogue.index = catalogue.index.astype(str)
    catalogue = catalogue.reindex(index)
    line_category = lines.drop_duplicates("sku", keep="last").set_index("sku")["category"]
    line_category.index = line_category.index.astype(str)
    catalogue["category"] = catalogue["category"].fillna(line_category.reindex(index))
    return catalogue
