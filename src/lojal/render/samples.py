"""Built-in sample recipients for preview, `lojal check` and tests: no database needed.

Contexts have exactly the shape the nightly pipeline passes to `TemplateSet.render` (see
docs/architecture.md), with one or more customers per locale and names using æ, ø, å, ä, ö.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from lojal.config import Campaign, ProjectConfig
from lojal.decisions import ShopSecret, offer_codes

RUN_DATE = date(2026, 11, 24)
SAMPLE_SECRET = ShopSecret(b"lojal preview samples, not a shop secret")
# The sample shop's markets (config/markets.yaml): Norway NOK, Sweden SEK, Denmark DKK, euro countries EUR.
CURRENCY_BY_LOCALE = {"en": "EUR", "nb": "NOK", "sv": "SEK", "da": "DKK"}


@dataclass(frozen=True)
class SampleCustomer:
    key: str
    customer: dict[str, Any]


SAMPLE_CUSTOMERS: tuple[SampleCustomer, ...] = (
    SampleCustomer("en-olivia", dict(id=1001, first_name="Olivia", email="olivia@example.com", locale="en", country="IE",
                                     tier="Gold", previous_tier="Silver", order_count=7, days_since_last_order=1.0,
                                     birthday=date(1988, 11, 24))),
    SampleCustomer("nb-bjorn", dict(id=1002, first_name="Bjørn Åge", email="bjorn@example.no", locale="nb", country="NO",
                                    tier="Silver", previous_tier="Bronze", order_count=3, days_since_last_order=14.0,
                                    birthday=date(1975, 11, 24))),
    SampleCustomer("nb-solveig", dict(id=1005, first_name="Solveig", email="solveig@example.no", locale="nb",
                                      country="NO", tier="Bronze", previous_tier=None, order_count=1,
                                      days_since_last_order=None, birthday=None)),
    SampleCustomer("sv-asa", dict(id=1003, first_name="Åsa", email="asa@example.se", locale="sv", country="SE",
                                  tier="Gold", previous_tier="Silver", order_count=12, days_since_last_order=120.0,
                                  birthday=date(1990, 11, 24))),
    SampleCustomer("da-soren", dict(id=1004, first_name="Søren Æblø", email="soren@example.dk", locale="da",
                                    country="DK", tier="Silver", previous_tier="Bronze", order_count=5,
                                    days_since_last_order=95.0, birthday=date(1982, 11, 24))),
)

_PRODUCTS = (
    ("LIN-001", "Linen napkins, set of 4", "Textiles", 349.0),
    ("CAN-014", "Beeswax candle, 2-pack", "Candles", 129.0),
    ("MUG-203", "Stoneware mug", "Kitchen", 189.5),
    ("THR-077", "Wool throw, fjord blue", "Textiles", 1299.0),
    ("SOA-310", "Dish soap refill 1 l", "Cleaning", 89.0),
    ("VAS-042", "Glass vase, smoke", "Decor", 459.0),
)
_REASONS = (
    ("bought_together", {"product": "Stoneware mug"}, "Often bought together with Stoneware mug"),
    ("reorder_due", {"days": 30, "product": "Dish soap refill 1 l"}, "You usually reorder Dish soap refill 1 l about every 30 days"),
    ("bought_before", {"times": 3}, "You have bought this 3 times"),
    ("favourite_category", {"category": "Textiles"}, "From Textiles, one of your favourite categories"),
    ("similar_customers", {}, "Popular with customers like you"),
    ("trending", {}, "Trending right now"),
    ("popular", {}, "One of our most popular products"),
)
_PRICE_FACTOR = {"GBP": 0.075, "NOK": 1.0, "SEK": 1.0, "DKK": 0.65, "EUR": 0.085}


def _price(nok: float, currency: str) -> float:
    return round(nok * _PRICE_FACTOR[currency], 2)


def sample_recommendations(count: int, currency: str, offset: int = 0) -> list[dict[str, Any]]:
    recommendations = []
    for slot in range(1, count + 1):
        sku, title, category, price = _PRODUCTS[(slot + offset) % len(_PRODUCTS)]
        code, params, english = _REASONS[(slot + offset) % len(_REASONS)]
        recommendations.append(dict(
            sku=sku, title=title, category=category, price=_price(price, currency), currency=currency,
            image_url=f"https://nordlys.example/img/{sku.lower()}.jpg",
            product_url=f"https://nordlys.example/p/{sku.lower()}", strategy="sample", slot=slot,
            reason_code=code, reason_params=dict(params), reason=english,
        ))
    return recommendations


def sample_last_order(customer_id: int, currency: str) -> dict[str, Any]:
    items = [dict(sku=sku, title=title, quantity=quantity, unit_price=_price(price, currency),
                  image_url=f"https://nordlys.example/img/{sku.lower()}.jpg",
                  product_url=f"https://nordlys.example/p/{sku.lower()}")
             for (sku, title, _, price), quantity in zip(_PRODUCTS[:2], (2, 1))]
    total = round(sum(item["unit_price"] * item["quantity"] for item in items), 2)
    return dict(id=f"{customer_id}-4711", placed_at=datetime(2026, 11, 23, 14, 5), total=total,
                currency=currency, items=items)


def sample_context(campaign: Campaign, sample: SampleCustomer, *, with_last_order: bool = True) -> dict[str, Any]:
    """The render context of `sample` for `campaign`, shaped like the nightly pipeline's."""
    customer = dict(sample.customer)
    currency = CURRENCY_BY_LOCALE[customer["locale"]]
    count = campaign.recommendations.total_slots if campaign.recommendations else 0
    message_id = f"{campaign.id}-{customer['id']}-{RUN_DATE.isoformat()}"
    offer = {}
    if campaign.offer is not None:  # the code a real run derives from the shop's secret, here from a sample one
        offer = {"offer": {"code": str(offer_codes(campaign, [customer["id"]], SAMPLE_SECRET)[0])}}
    return dict(
        **offer,
        customer=customer,
        recommendations=sample_recommendations(count, currency, offset=customer["id"] % 3),
        last_order=sample_last_order(customer["id"], currency) if with_last_order else None,
        campaign=dict(id=campaign.id, name=campaign.name),
        message=dict(id=message_id, unsubscribe_url=f"https://nordlys.example/unsubscribe/{message_id}",
                     run_date=RUN_DATE),
    )


def is_upgrade(customer: dict[str, Any], tier_names: list[str]) -> bool:
    """The customer's tier is above their previous one (no previous tier counts as the lowest):
    only such a customer is ever congratulated on a tier, in previews too."""
    rank = {name: i for i, name in enumerate(tier_names)}
    tier, previous = customer.get("tier"), customer.get("previous_tier") or (tier_names[0] if tier_names else None)
    return tier in rank and previous in rank and rank[tier] > rank[previous]


def samples_for(config: ProjectConfig, campaign: Campaign, locale: str | None = None) -> list[SampleCustomer]:
    """The sample customers who could receive `campaign` (all, except that a tier campaign only
    shows customers who moved up a tier), optionally of one locale."""
    tier_names = [t.name for t in config.loyalty.tiers]
    return [s for s in SAMPLE_CUSTOMERS
            if (locale is None or s.customer["locale"] == locale)
            and (campaign.occasion != "tier" or is_upgrade(s.customer, tier_names))]


def sample_contexts(config: ProjectConfig, campaign: Campaign) -> list[tuple[str, dict[str, Any]]]:
    """(label, context) for every sample customer who could receive it; campaigns not triggered by an
    order are also tried without a last order, since the pipeline may pass None for them."""
    samples = samples_for(config, campaign)
    contexts = [(sample.key, sample_context(campaign, sample)) for sample in samples]
    if campaign.occasion != "last_order":
        contexts += [(f"{sample.key}-no-order", sample_context(campaign, sample, with_last_order=False))
                     for sample in samples]
    return contexts
