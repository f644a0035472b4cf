"""Every feature a segment may name: its type and what it means.

The registry drives validation (unknown names, wrong value types, did-you-mean), `segments
explain` and the reference in docs/segments.md, so a feature exists here or nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FeatureKind = Literal["number", "date", "text", "flag"]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind
    description: str
    source: Literal["orders", "rfm", "loyalty", "prediction", "customer"]


def _features(*items: Feature) -> dict[str, Feature]:
    return {f.name: f for f in items}


FEATURES: dict[str, Feature] = _features(
    # Order history
    Feature("first_order_at", "date", "when the customer's first order was placed (empty if none)", "orders"),
    Feature("last_order_at", "date", "when the customer's most recent order was placed (empty if none)", "orders"),
    Feature("last_order_id", "number", "id of the most recent order (empty if none)", "orders"),
    Feature("last_order_total", "number", "total of the most recent order", "orders"),
    Feature("days_since_last_order", "number", "calendar days from the last order's date to the run date (1 = yesterday)", "orders"),
    Feature("days_since_first_order", "number", "calendar days from the first order's date to the run date", "orders"),
    Feature("order_count", "number", "number of orders ever placed (0 if none)", "orders"),
    Feature("order_count_12m", "number", "number of orders in the last 365 days", "orders"),
    Feature("total_spend", "number", "sum of all order totals", "orders"),
    Feature("average_order_value", "number", "total_spend / order_count (empty if no orders)", "orders"),
    Feature("spend_12m", "number", "sum of order totals in the last 365 days", "orders"),
    Feature("distinct_products", "number", "number of different products (SKUs) ever bought", "orders"),
    Feature("distinct_categories", "number", "number of different product categories ever bought", "orders"),
    Feature("favourite_category", "text", "category with the highest spend (ties: alphabetically first)", "orders"),
    Feature("tenure_days", "number", "calendar days since the customer account was created", "orders"),
    Feature("mean_days_between_orders", "number", "average gap in days between the customer's order days (needs 2+ order days)", "orders"),
    Feature("expected_next_order_at", "date", "last order date + the customer's own average gap between orders", "orders"),
    Feature("days_until_next_order", "number", "days from the run date to expected_next_order_at (negative = overdue)", "orders"),
    # RFM
    Feature("recency_score", "number", "1-5, 5 = the fifth of buyers who ordered most recently", "rfm"),
    Feature("frequency_score", "number", "1-5, 5 = the fifth of buyers with the most orders", "rfm"),
    Feature("monetary_score", "number", "1-5, 5 = the fifth of buyers with the highest total spend", "rfm"),
    Feature("rfm_score", "text", "the three scores as text, e.g. '545'", "rfm"),
    Feature("rfm_group", "text", "named RFM group (Champions, Loyal, ... Lost; 'No orders' without orders)", "rfm"),
    # Loyalty
    Feature("tier", "text", "loyalty tier tonight, from spend_12m and config/loyalty.yaml", "loyalty"),
    Feature("previous_tier", "text", "loyalty tier at the last completed run (at most `upgrade_catch_up_days` "
                                     "back; the previous night if none)", "loyalty"),
    Feature("tier_rank", "number", "position of tier in config/loyalty.yaml (0 = lowest)", "loyalty"),
    Feature("previous_tier_rank", "number", "position of previous_tier in config/loyalty.yaml", "loyalty"),
    Feature("tier_upgraded", "flag", "true when tier is higher than previous_tier", "loyalty"),
    # BG/NBD predictions
    Feature("p_alive", "number", "BG/NBD probability (0-1) that the customer is still active", "prediction"),
    Feature("expected_purchases_90d", "number", "BG/NBD expected number of purchases in the next 90 days", "prediction"),
    Feature("reorder_probability", "number", "repurchase model: highest probability (0-1), over the products "
                                             "bought on 2+ days, of re-buying one within 14 days (empty without such products)", "prediction"),
    Feature("reorder_interval_days", "number", "the customer's usual gap in days between purchases of that "
                                               "product (median)", "prediction"),
    # Customer attributes
    Feature("locale", "text", "customer language: en, nb, sv or da", "customer"),
    Feature("country", "text", "two-letter country code", "customer"),
    Feature("market", "text", "market id of the customer's country (config/markets.yaml), e.g. sweden", "customer"),
    Feature("time_zone", "text", "customer time zone, e.g. Europe/Oslo", "customer"),
    Feature("birthday", "date", "date of birth (empty if unknown)", "customer"),
    Feature("created_at", "date", "when the customer account was created", "customer"),
)

CUSTOMER_ATTRIBUTES = [name for name, f in FEATURES.items() if f.source == "customer"]
