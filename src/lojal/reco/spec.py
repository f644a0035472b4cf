"""What a campaign asks of the recommendation stage (the `recommendations:` block in
config/campaigns.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

StrategyName = Literal[
    "repeat", "replenishment", "co_purchase", "ease", "popular", "trending", "category_affinity",
]


class SlotSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: StrategyName = Field(description="which strategy fills these slots")
    count: int = Field(ge=1, le=12, description="how many products this strategy contributes")


class RecommendationSpec(BaseModel):
    """A blend of strategies plus the business rules applied after scoring."""

    model_config = ConfigDict(extra="forbid")
    slots: list[SlotSpec] = Field(min_length=1)
    exclude_trigger_order: bool = Field(
        default=False,
        description="never recommend the items of the order that triggered the e-mail (post-purchase); "
                    "leave off where the point is to re-buy them (replenishment)")
    exclude_bought_within_days: int = Field(
        default=30, ge=0, description="never recommend what was bought this recently (repeat/replenishment excepted)")
    max_per_category: int | None = Field(default=2, ge=1, description="diversity: at most this many per category")
    price_band: float | None = Field(
        default=None, gt=0, description="keep prices within ±this share of the customer's average item price")
    margin_boost: float = Field(default=0.0, ge=0, le=1, description="weight of the product's margin in ranking")
    fallbacks: list[StrategyName] = Field(
        default_factory=lambda: ["popular", "trending"],
        description="strategies that fill what the slots could not (new customers, thin history), in order")

    @property
    def total_slots(self) -> int:
        return sum(s.count for s in self.slots)

    @model_validator(mode="after")
    def _not_too_many(self) -> "RecommendationSpec":
        if self.total_slots > 12:
            raise ValueError(f"at most 12 recommended products per e-mail, the slots ask for {self.total_slots}")
        return self
