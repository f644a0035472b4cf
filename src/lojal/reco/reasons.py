"""Why an item was recommended: a stable code + parameters (templates translate these) and English text."""

from __future__ import annotations

REASON_TEXT: dict[str, str] = {
    "bought_together": "Because you bought {product}",
    "similar_customers": "Customers like you also bought",
    "reorder_due": "You usually re-order this about every {days} days",
    "reorder_due_weeks": "You usually re-order this about every {weeks} weeks",
    "reorder_due_months": "You usually re-order this about every {months} months",
    "bought_before": "You have bought this {times} times",
    "popular": "Popular right now",
    "trending": "Trending this month",
    "favourite_category": "More from {category}",
}

REASON_OF_STRATEGY: dict[str, str] = {
    "co_purchase": "bought_together",
    "ease": "similar_customers",
    "replenishment": "reorder_due",
    "repeat": "bought_before",
    "popular": "popular",
    "trending": "trending",
    "category_affinity": "favourite_category",
}


def reason_text(code: str, params: dict) -> str:
    """English text of a reason; `bought_before` once reads "You have bought this before"."""
    if code == "bought_before" and params.get("times", 0) < 2:
        return "You have bought this before"
    return REASON_TEXT[code].format(**params)


def reorder_reason(interval_days: float, product: str) -> tuple[str, dict]:
    """The re-order rhythm in the unit a customer thinks in: days under two weeks, weeks under
    two months, then months (always at least 2 of the unit, so no plural forms are needed).
    Every variant carries `days` (rounded) and `product`."""
    days = max(int(round(interval_days)), 2)
    if days < 14:
        return "reorder_due", {"days": days, "product": product}
    if days < 60:
        return "reorder_due_weeks", {"days": days, "weeks": max(int(round(days / 7)), 2), "product": product}
    return "reorder_due_months", {"days": days, "months": max(int(round(days / 30.4)), 2), "product": product}
