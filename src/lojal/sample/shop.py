"""Generate two years of a Nordic home-goods web shop, deterministically from a seed.

Customers follow archetypes (new, occasional, loyal, VIP, lapsed); categories have power-law
popularity; consumables are re-bought on their cycle; some customers have no consent and a few
are suppressed. Everything comes from one `numpy.random.Generator`, so a seed gives the same shop.
"""

from __future__ import annotations

import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from lojal.addresses import suppression_key
from lojal.clock import local_to_utc
from lojal.sample.catalog import (ADJECTIVES, CATEGORIES, CATEGORY_MARGINS, CATEGORY_NAMES, CONSENT_SOURCES,
                                  LOCALES, MARKETS, NOT_SOLD, NOUN_NAMES, TRANSLATED_LOCALES)

HISTORY_DAYS = 730
ARCHETYPES = {  # name: (share, mean days between orders or None for a fixed count, first-order lag)
    "new": 0.08, "occasional": 0.40, "loyal": 0.25, "vip": 0.05, "lapsed": 0.22,
}
BASE_URL = "https://nordlys.example"


@dataclass
class SampleShop:
    customers: pd.DataFrame
    products: pd.DataFrame
    orders: pd.DataFrame
    lines: pd.DataFrame
    suppressions: pd.DataFrame
    prices: pd.DataFrame | None = None  # sku, market, currency, price (store table product_prices)
    texts: pd.DataFrame | None = None   # sku, locale, title, category (store table product_texts)


def generate_shop(customers: int, seed: int, until: date,
                  progress: Callable[[int], None] | None = None, timezone: str = "UTC") -> SampleShop:
    """A shop with `customers` customers and orders placed before `until` began in `timezone`.

    Times are generated as the shop's wall-clock times (evening peaks are local evenings) and
    returned in UTC, as the store keeps them."""
    rng = np.random.default_rng(seed)
    products = _products(rng)
    prices, texts = _market_prices(products), _translations(products)
    people = _customers(rng, customers, until)
    orders, lines = _orders(rng, people, products, prices, until, progress)
    suppressions = _suppressions(rng, people, until)
    for frame, columns in ((people, ["created_at", "consent_at"]), (orders, ["placed_at"]),
                           (suppressions, ["created_at"])):
        for column in columns:
            frame[column] = local_to_utc(frame[column], timezone)
    return SampleShop(people.drop(columns=["archetype"]), products, orders, lines, suppressions, prices, texts)


def _zipf_weights(n: int, exponent: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return w / w.sum()


class _Picker:
    """Draws indices with fixed probabilities; `rng.choice(p=...)` re-validates p on every call,
    which dominated generation time."""

    def __init__(self, rng: np.random.Generator, weights: np.ndarray):
        self.rng = rng
        self.cumulative = np.cumsum(weights / weights.sum())

    def __call__(self) -> int:
        return min(int(np.searchsorted(self.cumulative, self.rng.random(), side="right")), len(self.cumulative) - 1)


def _products(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for cat_index, (category, (_cycle, median_price, nouns)) in enumerate(CATEGORIES.items()):
        for i, (noun, adjective) in enumerate((n, a) for n in nouns for a in ADJECTIVES[: 20 // len(nouns) + 1]):
            if i >= 20:
                break
            sku = f"{category[:3].upper().replace(' ', '')}-{cat_index:02d}{i:02d}"
            price = float(np.round(median_price * rng.lognormal(0, 0.35) / 10) * 10 - 1)
            rows.append({
                "sku": sku, "title": f"{adjective} {noun.lower()}" if i else f"{noun}",
                "category": category, "price": max(price, 19.0), "currency": "NOK",
                "image_url": f"{BASE_URL}/img/{sku}.jpg" if rng.random() > 0.02 else None,
                "product_url": f"{BASE_URL}/p/{sku.lower()}",
                "in_stock": bool(rng.random() > 0.06),
                "margin": _margin(sku, category),
            })
    return pd.DataFrame(rows)


def _market_prices(products: pd.DataFrame) -> pd.DataFrame:
    """Each product's price in each market that sells its category, rounded the way shops price."""
    rows = []
    for market, currency, factor, step, ending in MARKETS.values():
        for sku, category, nok in zip(products["sku"], products["category"], products["price"]):
            if category in NOT_SOLD.get(market, ()):
                continue
            price = max(round(float(nok) * factor / step) * step, step * 2) - ending
            rows.append({"sku": sku, "market": market, "currency": currency, "price": round(price, 2)})
    return pd.DataFrame(rows)


def _translations(products: pd.DataFrame) -> pd.DataFrame:
    """Titles and category names in nb, sv and da, built from the same words as the English ones."""
    rows = []
    nouns = {noun.lower(): names for noun, names in NOUN_NAMES.items()}
    for sku, title, category in zip(products["sku"], products["title"], products["category"]):
        adjective, _, rest = title.partition(" ")
        own = nouns.get(title.lower())
        for index, locale in enumerate(TRANSLATED_LOCALES):
            if own is not None:  # the first product of a category is the bare noun
                translated = own[index]
            else:
                translated = f"{adjective} {nouns[rest][index].lower()}"
            rows.append({"sku": sku, "locale": locale, "title": translated,
                         "category": CATEGORY_NAMES[category][index]})
    return pd.DataFrame(rows)


def _margin(sku: str, category: str) -> float:
    """Gross margin share: consumables run thin, decor and textiles rich. From the SKU's own
    generator, so adding margins left every other generated value as it was."""
    base = CATEGORY_MARGINS.get(category, 0.40)
    jitter = np.random.default_rng(zlib.crc32(sku.encode())).normal(0, 0.05)
    return float(np.clip(round(base + jitter, 3), 0.05, 0.8))


def _ascii(name: str) -> str:
    folded = name.lower().replace("ø", "o").replace("æ", "ae").replace("å", "a")
    return unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()


def _customers(rng: np.random.Generator, n: int, until: date) -> pd.DataFrame:
    locales = list(LOCALES)
    shares = np.array([LOCALES[loc][0] for loc in locales])
    locale = rng.choice(locales, size=n, p=shares / shares.sum())
    archetype = rng.choice(list(ARCHETYPES), size=n, p=list(ARCHETYPES.values()))
    start = datetime.combine(until, datetime.min.time())
    age_days = np.where(archetype == "new", rng.uniform(1, 30, n), rng.uniform(30, HISTORY_DAYS, n))
    created = [start - timedelta(seconds=int(d * 86400)) for d in age_days]
    rows = []
    for i in range(n):
        loc = str(locale[i])
        _share, country, tz, domain, names = LOCALES[loc]
        first = str(rng.choice(names))
        cid = 100001 + i
        consent = bool(rng.random() < 0.85)
        has_birthday = rng.random() < 0.8
        birthday = date(int(rng.integers(1950, 2005)), 1, 1) + timedelta(days=int(rng.integers(0, 365)))
        rows.append({
            "customer_id": cid, "email": f"{_ascii(first)}.{cid}@{domain}", "first_name": first,
            "locale": loc, "country": country, "time_zone": tz,
            "birthday": birthday if has_birthday else None, "created_at": created[i],
            "consent_email": consent, "consent_at": created[i] if consent else None,
            "consent_source": str(rng.choice(CONSENT_SOURCES)) if consent else None,
            "archetype": str(archetype[i]),
        })
    return pd.DataFrame(rows)


def _order_times(rng: np.random.Generator, archetype: str, created: datetime, until: datetime,
                 cycle: int | None) -> list[datetime]:
    first = created + timedelta(days=float(rng.exponential(3)))
    if archetype == "new":
        return [first] if first < until else []
    if archetype == "occasional":
        span = (until - first).total_seconds() / 86400
        count = int(rng.integers(1, 4))
        return sorted(first + timedelta(days=float(d)) for d in np.r_[0, rng.uniform(0, span, count - 1)])
    mean_gap = {"loyal": 45.0, "vip": 20.0, "lapsed": 50.0}[archetype]
    if cycle and archetype in ("loyal", "vip"):
        mean_gap = min(mean_gap, cycle * rng.uniform(0.95, 1.25))
    end = until
    if archetype == "lapsed":
        end = until - timedelta(days=float(rng.uniform(60, 500)))
    times, t = [], first
    while t < end:
        times.append(t)
        t += timedelta(days=float(rng.gamma(4.0, mean_gap / 4.0)))
    return times


def _orders(rng: np.random.Generator, people: pd.DataFrame, products: pd.DataFrame, market_prices: pd.DataFrame,
            until: date, progress: Callable[[int], None] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    until_dt = datetime.combine(until, datetime.min.time())
    categories = list(CATEGORIES)
    cat_popularity = _zipf_weights(len(categories), 0.9)
    pools = {c: np.flatnonzero(products["category"].to_numpy() == c) for c in categories}
    pool_pickers = {c: _Picker(rng, _zipf_weights(len(idx), 1.2)) for c, idx in pools.items()}
    category_picker = _Picker(rng, cat_popularity)
    hour_picker = _Picker(rng, _HOURS)
    # price per market aligned with products (NaN: not sold there); customers pay their market's price
    prices = {market: market_prices[market_prices["market"] == market].set_index("sku")["price"]
              .reindex(products["sku"]).to_numpy(float) for market, *_ in MARKETS.values()}
    currency_of = {country: (market, currency) for country, (market, currency, *_) in MARKETS.items()}
    consumables = [c for c in categories if CATEGORIES[c][0]]

    def pick(cat: str) -> int:
        return int(pools[cat][pool_pickers[cat]()])

    order_rows: list[tuple] = []
    line_rows: list[tuple] = []
    for i, person in enumerate(people.itertuples(index=False)):
        favourites = list(rng.choice(categories, size=int(rng.integers(1, 4)), replace=False, p=cat_popularity))
        staple_cat = next((c for c in favourites if c in consumables), None)
        has_staple = staple_cat is not None and person.archetype in ("loyal", "vip", "lapsed")
        staple = pick(staple_cat) if has_staple else None
        cycle = CATEGORIES[staple_cat][0] if has_staple else None
        market, currency = currency_of[person.country]
        market_price = prices[market]
        basket_scale = 2.2 if person.archetype == "vip" else 1.0
        for placed_at in _order_times(rng, person.archetype, person.created_at.to_pydatetime(), until_dt, cycle):
            placed_at = placed_at.replace(hour=hour_picker(), minute=int(rng.integers(60)),
                                          second=int(rng.integers(60)), microsecond=0)
            if placed_at >= until_dt:
                continue
            order_key = len(order_rows)
            picked = [staple] if staple is not None and rng.random() < 0.85 else []
            for _ in range(max(1, int(rng.poisson(1.3 * basket_scale)))):
                cat = favourites[int(rng.integers(len(favourites)))] if rng.random() < 0.7 else categories[category_picker()]
                picked.append(pick(cat))
            line_no = 0
            for product in dict.fromkeys(picked):
                discount = 0.9 if rng.random() < 0.1 else 1.0
                quantity = int(1 + rng.poisson(0.3))
                if np.isnan(market_price[product]):
                    continue  # not sold in the customer's market
                line_no += 1
                line_rows.append((order_key, line_no, product, quantity,
                                  round(float(market_price[product]) * discount, 2)))
            if line_no:
                order_rows.append((order_key, person.customer_id, placed_at, currency))
        if progress and (i + 1) % 250 == 0:
            progress(250)
    if progress:
        progress(len(people) % 250)
    orders = pd.DataFrame(order_rows, columns=["key", "customer_id", "placed_at", "currency"])
    orders = orders.sort_values(["placed_at", "key"], kind="stable").reset_index(drop=True)
    orders["order_id"] = np.arange(500001, 500001 + len(orders))
    key_to_id = pd.Series(orders["order_id"].to_numpy(), index=orders["key"].to_numpy())
    lines = pd.DataFrame(line_rows, columns=["key", "line_no", "product", "quantity", "unit_price"])
    lines["order_id"] = key_to_id.reindex(lines["key"]).to_numpy()
    lines["sku"] = products["sku"].to_numpy()[lines["product"].to_numpy()]
    lines = lines.sort_values(["order_id", "line_no"]).reset_index(drop=True)
    return (orders[["order_id", "customer_id", "placed_at", "currency"]],
            lines[["order_id", "line_no", "sku", "quantity", "unit_price"]])


_HOURS = np.array([1, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 7, 7, 6, 6, 6, 7, 8, 9, 9, 8, 5, 2], dtype=float)
_HOURS /= _HOURS.sum()


def _suppressions(rng: np.random.Generator, people: pd.DataFrame, until: date) -> pd.DataFrame:
    consenting = people[people["consent_email"]]
    picked = consenting.sample(n=max(1, len(consenting) // 100), random_state=int(rng.integers(2**31)))
    reasons = rng.choice(["unsubscribe", "bounce", "spam_report"], size=len(picked), p=[0.7, 0.2, 0.1])
    when = datetime.combine(until, datetime.min.time()) - timedelta(days=3)
    return pd.DataFrame({"email": picked["email"].map(suppression_key).to_numpy(), "reason": reasons,
                         "source": "sample-data", "created_at": when})
