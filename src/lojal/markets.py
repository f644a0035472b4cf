"""Markets: which currency a customer pays in, and what a product costs and is called there.

`config/markets.yaml` lists the shop's markets (id, currency, countries) and the default market for
every other country. A customer belongs to the market of their country. A product's price in a
market comes from the store's `product_prices` (sku, market, currency, price); a product without any
row there is sold at its base `products.price` in the markets whose currency is `products.currency`
(a one-market shop needs no price table). A product with no price in a market is not sold there:
segments and recommendations never show it to that market's customers. Titles and category names per
locale come from `product_texts` (sku, locale, title, category), falling back to the product's own.
Pure functions over frames; the pipeline wires them in.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_MARKET_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
PRICE_COLUMNS = ["sku", "market", "currency", "price"]
TEXT_COLUMNS = ["sku", "locale", "title", "category"]


class Market(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="short name used in the price table and in segments, e.g. norway")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code the market pays in, e.g. NOK")
    countries: list[str] = Field(default_factory=list, description="two-letter country codes, e.g. ['NO']")
    rate: float = Field(default=1.0, gt=0, description=(
        "what one unit of this currency is worth in brand.currency, e.g. 11.6 for EUR in a NOK shop: "
        "spend features (tiers, RFM) add up every market's orders in the shop's currency"))

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not _MARKET_ID.match(str(v)):
            raise ValueError("use lower-case letters, digits and _ (start with a letter), e.g. 'norway'")
        return v

    @field_validator("countries", mode="before")
    @classmethod
    def _country_codes(cls, v):
        out = []
        for code in v or []:
            if isinstance(code, bool):
                raise ValueError("YAML reads an unquoted NO (Norway) as false: quote it, 'NO'")
            if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{2}", code):
                raise ValueError(f"{code!r} is not a two-letter country code like 'SE'")
            out.append(code.upper())
        return out


class Markets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    markets: list[Market] = Field(min_length=1)
    default: str = Field(description="market of customers whose country no market lists")

    @model_validator(mode="after")
    def _consistent(self) -> "Markets":
        ids = [m.id for m in self.markets]
        if len(set(ids)) != len(ids):
            raise ValueError("market ids must be unique")
        if self.default not in ids:
            raise ValueError(f"default market '{self.default}' is not listed; use one of {ids}")
        seen: dict[str, str] = {}
        for market in self.markets:
            for country in market.countries:
                if country in seen:
                    raise ValueError(f"country {country} is in markets '{seen[country]}' and '{market.id}'")
                seen[country] = market.id
        return self

    @classmethod
    def single(cls, currency: str) -> "Markets":
        """The markets of a shop without config/markets.yaml: everyone pays in brand.currency."""
        return cls(markets=[Market(id="default", currency=currency)], default="default")

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.markets]

    def get(self, market_id: str) -> Market:
        return next(m for m in self.markets if m.id == market_id)

    def of_country(self, country: str) -> Market:
        code = str(country or "").upper()
        return next((m for m in self.markets if code in m.countries), self.get(self.default))

    def rates(self) -> dict[str, float]:
        """Currency -> value of one unit in the shop's currency (1.0 where no market names it)."""
        return {m.currency: m.rate for m in self.markets}

    def assign(self, countries: pd.Series) -> pd.Series:
        """Market id per customer, from their country."""
        lookup = {c: m.id for m in self.markets for c in m.countries}
        return countries.astype(str).str.upper().map(lookup).fillna(self.default).astype(object)


def empty_prices() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c == "price" else object) for c in PRICE_COLUMNS})


def empty_texts() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in TEXT_COLUMNS})


def market_prices(products: pd.DataFrame, prices: pd.DataFrame, market: Market) -> pd.Series:
    """Price of every product (index sku, like `products`) in `market`; NaN where it is not sold.
    A product with no row in `prices` keeps its base price where the currency matches."""
    listed = prices[prices["market"] == market.id].drop_duplicates("sku", keep="last").set_index("sku")["price"]
    result = listed.reindex(products.index).astype(float)
    unpriced = ~products.index.isin(prices["sku"])
    base = products["price"].astype(float).where(products["currency"].astype(str) == market.currency)
    return result.where(~unpriced, base)


def sold_in(products: pd.DataFrame, prices: pd.DataFrame, market: Market) -> pd.Series:
    """Whether each product (index sku) has a price in `market`."""
    return market_prices(products, prices, market).notna()


def localized_texts(products: pd.DataFrame, texts: pd.DataFrame, locale: str) -> pd.DataFrame:
    """title and category of every product (index sku) in `locale`, the product's own where missing."""
    own = texts[texts["locale"] == locale].drop_duplicates("sku", keep="last").set_index("sku")
    out = products[["title", "category"]].copy()
    for column in ("title", "category"):
        if column in own.columns:
            translated = own[column].reindex(out.index)
            out[column] = translated.where(translated.notna() & (translated.astype(str) != ""), out[column])
    return out


class MarketCatalogue:
    """Prices per market and texts per locale, looked up per recipient (built once per run; plain
    dicts, since every e-mail looks up several products)."""

    def __init__(self, markets: Markets, products: pd.DataFrame, prices: pd.DataFrame, texts: pd.DataFrame,
                 locales: tuple[str, ...] = ("en", "nb", "sv", "da")):
        self.markets = markets
        self.price = {m.id: market_prices(products, prices, m) for m in markets.markets}
        self._price = {market: {sku: float(p) for sku, p in series.items() if not pd.isna(p)}
                       for market, series in self.price.items()}
        self._currency = {m.id: m.currency for m in markets.markets}
        frames = {loc: localized_texts(products, texts, loc) for loc in locales}
        self._text = {loc: dict(zip(frame.index, zip(frame["title"], frame["category"]))) for loc, frame in frames.items()}
        # reason_params name products and categories by the shop's own words
        self.words = {loc: {**dict(zip(products["category"], frame["category"])),
                            **dict(zip(products["title"], frame["title"]))}
                      for loc, frame in frames.items()}

    def currency(self, market_id: str) -> str:
        return self._currency[market_id]

    def sellable(self, market_id: str, skus) -> np.ndarray:
        """Mask over `skus` (in that order): sold in the market."""
        return self.price[market_id].reindex(pd.Index(skus)).notna().to_numpy()

    def localize(self, item: dict, market_id: str | None, locale: str, *, reprice: bool) -> dict:
        """`item` (sku, title, category?, price?, currency?) with the locale's texts and, when
        `reprice`, the market's price and currency. Order items keep what was paid (reprice=False)."""
        sku = item.get("sku")
        texts = self._text.get(locale, {}).get(sku)
        if texts is not None:
            item["title"] = texts[0]
            if "category" in item:
                item["category"] = texts[1]
        params = item.get("reason_params")
        if params and locale in self.words:
            words = self.words[locale]
            item["reason_params"] = {k: words.get(v, v) if k in ("product", "category") else v
                                     for k, v in params.items()}
        if reprice and market_id is not None:
            price = self._price[market_id].get(sku)
            if price is not None:
                item["price"] = price
                item["currency"] = self._currency[market_id]
        return item
