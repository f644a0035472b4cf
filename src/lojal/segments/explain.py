"""Why one customer is in or out of a segment: every condition, their value, and whether it held."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lojal.errors import LojalError
from lojal.segments.evaluate import (DAY, Context, condition_mask, customers_who_ordered_on, matching_lines,
                                     resolve_date)
from lojal.segments.loader import SegmentSet
from lojal.segments.model import (AllOf, AnyOf, BirthdayToday, Bought, Compare, Condition, DateValue, InSegment, Not,
                                  OrderedDaysAgo)
from lojal.store.shopdata import ShopData


@dataclass(frozen=True)
class ExplainStep:
    depth: int
    condition: str
    value: str
    held: bool
    line: int | None


@dataclass(frozen=True)
class Explanation:
    segment: str
    path: str
    customer_id: int
    member: bool
    steps: list[ExplainStep]


def explain(segment_set: SegmentSet, name: str, customer_id: int, features: pd.DataFrame,
            data: ShopData) -> Explanation:
    """Walk the segment's condition tree for one customer (the same evaluator as the nightly run)."""
    if name not in segment_set.segments:
        raise LojalError(f"no segment '{name}'; segments: {', '.join(segment_set.names)}")
    if customer_id not in features.index:
        raise LojalError(f"no customer {customer_id} as of {data.run_date.isoformat()}")
    ctx = Context(features.loc[[customer_id]], data, segment_set)
    segment = segment_set[name]
    steps: list[ExplainStep] = []
    member = walk(segment.where, ctx, 0, steps)
    return Explanation(name, segment.path, customer_id, member, steps)


def walk(condition: Condition, ctx: Context, depth: int, steps: list[ExplainStep]) -> bool:
    held = bool(condition_mask(condition, ctx)[0])
    steps.append(ExplainStep(depth, label(condition, ctx.today), value_of(condition, ctx), held, condition.line))
    if isinstance(condition, (AllOf, AnyOf)):
        for child in condition.conditions:
            walk(child, ctx, depth + 1, steps)
    elif isinstance(condition, Not):
        walk(condition.condition, ctx, depth + 1, steps)
    return held


def label(condition: Condition, today: pd.Timestamp) -> str:
    if isinstance(condition, AllOf):
        return "all of:"
    if isinstance(condition, AnyOf):
        return "any of:"
    if isinstance(condition, Not):
        return "not:"
    if isinstance(condition, Compare):
        return f"{condition.feature} {condition.op.replace('_', ' ')} {operand_text(condition, today)}"
    if isinstance(condition, Bought):
        what = f"sku {', '.join(condition.skus)}" if condition.skus else f"category {', '.join(condition.categories)}"
        window = f" within {condition.within_days} days" if condition.within_days else " ever"
        return f"bought {what}{window}"
    if isinstance(condition, OrderedDaysAgo):
        day = today - condition.days * DAY
        return f"ordered {condition.days} days ago ({day.date().isoformat()})"
    if isinstance(condition, BirthdayToday):
        return "birthday today" if condition.expected else "birthday not today"
    if isinstance(condition, InSegment):
        return f"{'in' if condition.member else 'not in'} segment {condition.segment}"
    raise TypeError(type(condition).__name__)


def operand_text(condition: Compare, today: pd.Timestamp) -> str:
    value = condition.value
    if condition.op == "between":
        return f"{one_operand(value[0], today)} and {one_operand(value[1], today)}"
    if isinstance(value, list):
        return "[" + ", ".join(one_operand(v, today) for v in value) + "]"
    return one_operand(value, today)


def one_operand(value, today: pd.Timestamp) -> str:
    if isinstance(value, DateValue):
        day = resolve_date(value, today).date().isoformat()
        return day if value.day is not None else f"{value.text} ({day})"
    return format_value(value)


def value_of(condition: Condition, ctx: Context) -> str:
    row = ctx.features.iloc[0]
    customer_id = ctx.features.index[0]
    if isinstance(condition, Compare):
        return format_value(row[condition.feature])
    if isinstance(condition, Bought):
        lines = matching_lines(condition, ctx)
        mine = lines[lines["customer_id"] == customer_id]
        if mine.empty:
            return "no matching purchase"
        last = mine.iloc[-1]
        return f"last {last['placed_at'].date().isoformat()} ({last['sku']}, {last['category']})"
    if isinstance(condition, OrderedDaysAgo):
        day = ctx.today - condition.days * DAY
        ordered = customer_id in set(customers_who_ordered_on(day, ctx))
        return f"ordered that day; last order {format_value(row['last_order_at'])}" if ordered else \
            f"no order that day; last order {format_value(row['last_order_at'])}"
    if isinstance(condition, BirthdayToday):
        return f"birthday {format_value(row['birthday'])}"
    if isinstance(condition, InSegment):
        return "member" if ctx.membership(condition.segment)[0] else "not a member"
    return ""


def format_value(value) -> str:
    if value is None or (not isinstance(value, (str, list)) and pd.isna(value)):
        return "empty"
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.floor("D") else value.isoformat(sep=" ")
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)
