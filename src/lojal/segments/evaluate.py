"""Segment conditions evaluated as vectorized boolean masks over the features frame.

Each condition becomes a numpy bool array aligned with `features.index`. Nothing from a segment
file is ever executed: the parser produced a closed set of node types, and each maps to a fixed
numpy/pandas operation here. A missing value (no orders, unknown birthday) never satisfies a
comparison, `ne` and `not_in` included, so `not` is always the exact complement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lojal.features.registry import FEATURES
from lojal.segments.loader import SegmentSet
from lojal.segments.model import (AllOf, AnyOf, BirthdayToday, Bought, Compare, Condition, DateValue, InSegment, Not,
                                  OrderedDaysAgo)
from lojal.store.shopdata import ShopData

DAY = pd.Timedelta(days=1)


@dataclass
class Context:
    """What conditions read: one row per customer in `features`, the shop's orders and lines."""

    features: pd.DataFrame
    data: ShopData
    segment_set: SegmentSet
    members: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def today(self) -> pd.Timestamp:
        return self.data.as_of.floor("D")

    def membership(self, name: str) -> np.ndarray:
        if name not in self.members:
            self.members[name] = condition_mask(self.segment_set[name].where, self)
        return self.members[name]


def evaluate_segments(segment_set: SegmentSet, features: pd.DataFrame, data: ShopData) -> pd.DataFrame:
    """Raw condition truth per customer and segment (consent and suppression are applied by lojal.audience)."""
    ctx = Context(features, data, segment_set)
    columns = {segment.name: ctx.membership(segment.name) for segment in segment_set}
    return pd.DataFrame(columns, index=features.index, dtype=bool)


def condition_mask(condition: Condition, ctx: Context) -> np.ndarray:
    if isinstance(condition, AllOf):
        return np.logical_and.reduce([condition_mask(c, ctx) for c in condition.conditions])
    if isinstance(condition, AnyOf):
        return np.logical_or.reduce([condition_mask(c, ctx) for c in condition.conditions])
    if isinstance(condition, Not):
        return ~condition_mask(condition.condition, ctx)
    if isinstance(condition, Compare):
        return compare_mask(condition, ctx)
    if isinstance(condition, Bought):
        return ctx.features.index.isin(buyers(condition, ctx)).astype(bool)
    if isinstance(condition, OrderedDaysAgo):
        return ctx.features.index.isin(customers_who_ordered_on(ctx.today - condition.days * DAY, ctx)).astype(bool)
    if isinstance(condition, BirthdayToday):
        return birthday_mask(ctx) == condition.expected
    if isinstance(condition, InSegment):
        return ctx.membership(condition.segment) == condition.member
    raise TypeError(f"unhandled condition {type(condition).__name__}")


def compare_mask(test: Compare, ctx: Context) -> np.ndarray:
    kind = FEATURES[test.feature].kind
    column = ctx.features[test.feature]
    present = column.notna().to_numpy()
    if test.op == "is_null":
        return ~present if test.value else present
    operand = test.value
    if kind == "date":
        values = column.dt.floor("D")
        operand = resolve_operand(test.value, ctx.today)
    elif kind == "number":
        values = column.astype("float64")
    elif kind == "flag":
        values = column.fillna(False).astype(bool)
    else:
        values = column
    mask = operator_mask(test.op, values, operand)
    return mask.to_numpy(dtype=bool, na_value=False) & present


def operator_mask(op: str, values: pd.Series, operand) -> pd.Series:
    if op == "eq":
        return values == operand
    if op == "ne":
        return values != operand
    if op == "in":
        return values.isin(operand)
    if op == "not_in":
        return ~values.isin(operand)
    if op == "lt":
        return values < operand
    if op == "lte":
        return values <= operand
    if op == "gt":
        return values > operand
    if op == "gte":
        return values >= operand
    if op == "between":
        return (values >= operand[0]) & (values <= operand[1])
    if op == "contains":
        return values.str.contains(operand, regex=False, na=False)
    raise ValueError(f"unknown operator {op}")


def resolve_operand(value, today: pd.Timestamp):
    if isinstance(value, list):
        return [resolve_date(v, today) for v in value]
    return resolve_date(value, today)


def resolve_date(value: DateValue, today: pd.Timestamp) -> pd.Timestamp:
    """The calendar day a date value means on the run date."""
    if value.day is not None:
        return pd.Timestamp(value.day)
    if value.unit == "day":
        return today + value.offset * DAY
    if value.unit == "week":
        return today + 7 * value.offset * DAY
    if value.unit == "month":
        return today + pd.DateOffset(months=value.offset)
    return today + pd.DateOffset(years=value.offset)


def matching_lines(condition: Bought, ctx: Context) -> pd.DataFrame:
    lines = ctx.data.lines
    if condition.skus:
        hit = lines["sku"].isin(condition.skus).to_numpy()
    else:
        hit = lines["category"].isin(condition.categories).to_numpy()
    if condition.within_days is not None:
        hit = hit & (lines["placed_at"] >= ctx.today - condition.within_days * DAY).to_numpy()
    return lines.loc[hit, ["customer_id", "placed_at", "sku", "category"]]


def buyers(condition: Bought, ctx: Context) -> np.ndarray:
    return matching_lines(condition, ctx)["customer_id"].unique()


def customers_who_ordered_on(day: pd.Timestamp, ctx: Context) -> np.ndarray:
    placed = ctx.data.orders["placed_at"]
    on_day = (placed >= day) & (placed < day + DAY)
    return ctx.data.orders.loc[on_day, "customer_id"].unique()


def birthday_mask(ctx: Context) -> np.ndarray:
    """Birthday month and day equal today's; 29 February birthdays count on 28 February in other years."""
    birthday = ctx.features["birthday"]
    month = birthday.dt.month.to_numpy(dtype=float, na_value=np.nan)
    day = birthday.dt.day.to_numpy(dtype=float, na_value=np.nan)
    today = ctx.today
    hit = (month == today.month) & (day == today.day)
    if today.month == 2 and today.day == 28 and not today.is_leap_year:
        hit = hit | (month == 2) & (day == 29)
    return hit
