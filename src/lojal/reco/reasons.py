"""Why an item was recommended: a stable code + parameters (templates translate these) and English text."""

from __future__ import annotations

REASON_TEXT: dict[str, str] = {
    "bought_together": "Because you bought {product}",
    "similar_customers": "Customers like you also bought",
    "reorder_due": "You usually re-order every {days} days",
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
