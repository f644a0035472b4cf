"""Segment files parsed into typed condition trees.

A segment file has `name`, `description` and `where`, a condition. A condition is a mapping with
exactly one key:

    all: [conditions]          every one holds          any: [conditions]   at least one holds
    not: condition             the condition does not hold
    <feature>: {op: value}     a comparison on a feature (several operators: all must hold);
    <feature>: value           shorthand for {eq: value}, a list for {in: [...]}
    bought: {category|sku: X or [X, Y], within_days: N}
    ordered_days_ago: N        birthday_today: true
    in_segment: NAME           not_in_segment: NAME

This module only parses: it turns YAML data into the models below and reports every mistake with
its position. Nothing here reads customer data (see evaluate.py) and nothing is ever executed.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lojal.errors import Problem
from lojal.features.registry import FEATURES, FeatureKind
from lojal.yamlfile import PathKey, YamlDocument, did_you_mean, pydantic_problems

OPERATORS = ["eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between", "is_null", "contains"]
OPERATORS_BY_KIND: dict[FeatureKind, list[str]] = {
    "number": ["eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between", "is_null"],
    "date": ["eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between", "is_null"],
    "text": ["eq", "ne", "in", "not_in", "contains", "is_null"],
    "flag": ["eq", "ne", "is_null"],
}
LOGIC_KEYS = ["all", "any", "not"]
BEHAVIOUR_KEYS = ["bought", "ordered_days_ago", "birthday_today", "in_segment", "not_in_segment"]
CONDITION_KEYS = LOGIC_KEYS + BEHAVIOUR_KEYS
# Consent is enforced by lojal.audience for every send; a segment can neither read nor relax it.
CONSENT_WORDS = {"consent", "consent_email", "consent_at", "consent_source", "ignore_consent",
                 "include_unconsented", "skip_consent", "require_consent", "email", "suppressed"}
CONSENT_MESSAGE = ("consent cannot be used or switched off in a segment file: the engine mails only customers "
                   "with e-mail consent who are not suppressed (lojal.audience); remove '{key}'")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RELATIVE_DATE = re.compile(r"^(?:(\d+) (day|week|month|year)s? (ago|from now)|in (\d+) (day|week|month|year)s?)$")
NAMED_DAYS = {"today": 0, "yesterday": -1, "tomorrow": 1}
DATE_HELP = "write a date like 2024-05-31 or a relative date like '30 days ago', 'in 3 days', 'today'"
# Bounds checked at parse time, so that a file `lojal check` accepts never fails a run.
MAX_DAYS = 36500  # a hundred years: ordered_days_ago, relative dates
UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
MIN_YEAR, MAX_YEAR = 1900, 2199
MAX_NUMBER = 1e15


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    line: int | None = None
    col: int | None = None


class DateValue(BaseModel):
    """A calendar day: fixed (`day`) or relative to the run date (`offset` of `unit`s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str
    day: date | None = None
    offset: int = 0
    unit: Literal["day", "week", "month", "year"] = "day"


Scalar = Union[bool, float, str, DateValue]


class Compare(_Node):
    kind: Literal["compare"] = "compare"
    feature: str
    op: str
    value: Scalar | list[Scalar] | None = None


class Bought(_Node):
    kind: Literal["bought"] = "bought"
    skus: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    within_days: int | None = None


class OrderedDaysAgo(_Node):
    kind: Literal["ordered_days_ago"] = "ordered_days_ago"
    days: int


class BirthdayToday(_Node):
    kind: Literal["birthday_today"] = "birthday_today"
    expected: bool = True


class InSegment(_Node):
    kind: Literal["in_segment"] = "in_segment"
    segment: str
    member: bool = True


class AllOf(_Node):
    kind: Literal["all"] = "all"
    conditions: list["Condition"]


class AnyOf(_Node):
    kind: Literal["any"] = "any"
    conditions: list["Condition"]


class Not(_Node):
    kind: Literal["not"] = "not"
    condition: "Condition"


Condition = Union[AllOf, AnyOf, Not, Compare, Bought, OrderedDaysAgo, BirthdayToday, InSegment]
for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()


NodeT = TypeVar("NodeT", bound=_Node)


class Segment(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    description: str
    path: str
    where: Condition


class SegmentFile(BaseModel):
    """The top level of a segment file, before its condition is parsed."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    where: Any


class BoughtSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str | list[str] | None = None
    category: str | list[str] | None = None
    within_days: int | None = Field(default=None, ge=1, le=3650)


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class SegmentParser:
    """Parses one document; collects problems instead of stopping at the first."""

    def __init__(self, doc: YamlDocument):
        self.doc = doc
        self.problems: list[Problem] = []

    def fail(self, loc: PathKey, message: str, *, prefer_key: bool = False) -> None:
        self.problems.append(self.doc.problem(loc, message, prefer_key=prefer_key))

    def position(self, loc: PathKey) -> dict[str, int | None]:
        line, col = self.doc.position(loc)
        return {"line": line, "col": col}

    def segment(self, expected_name: str) -> Segment | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.fail((), "a segment file is a mapping with keys name, description and where")
            return None
        for key in data:
            if key in CONSENT_WORDS:
                self.fail((key,), CONSENT_MESSAGE.format(key=key), prefer_key=True)
        top = {k: v for k, v in data.items() if k not in CONSENT_WORDS}
        try:
            parsed = SegmentFile.model_validate(top)
        except ValidationError as exc:
            found = pydantic_problems(self.doc, exc, SegmentFile)  # drops "missing" twins of misspelt keys
            self.problems.extend(with_missing_key_hints(found, expected_name))
            parsed = None
        self.check_name(data.get("name"), expected_name)
        self.check_description(data.get("description"))
        if "where" not in data:
            return None
        where = self.condition(data["where"], ("where",))
        if parsed is None or where is None or self.problems:
            return None
        return Segment(name=parsed.name, description=parsed.description.strip(), path=self.doc.path, where=where)

    def check_name(self, name: Any, expected: str) -> None:
        if not isinstance(name, str):
            return
        if not NAME_PATTERN.match(name):
            self.fail(("name",), f"name '{name}': use lower-case letters, digits and _ (start with a letter), e.g. 'win_back'")
        elif name != expected:
            self.fail(("name",), f"name '{name}' does not match the file name '{expected}.yaml': rename the file or change the name")

    def check_description(self, description: Any) -> None:
        if not isinstance(description, str):
            return
        if not description.strip():
            self.fail(("description",), "description is empty: say in one line who is in this segment")
        elif "\n" in description.strip():
            self.fail(("description",), "description must be one line: shorten it (put details in a # comment)")

    # -- conditions -------------------------------------------------------------------------

    def condition(self, node: Any, loc: PathKey) -> Condition | None:
        if not isinstance(node, dict):
            self.fail(loc, f"a condition must be a mapping like 'days_since_last_order: {{gte: 90}}', got {describe(node)}")
            return None
        if not node:
            self.fail(loc, "empty condition: write one key, e.g. 'all:' with a list of conditions")
            return None
        if len(node) > 1:
            keys = list(node)
            self.fail(loc + (keys[1],), f"a condition has exactly one key but this one has {', '.join(repr(k) for k in keys)}: "
                      "put them in a list under 'all:' (every one must hold) or 'any:' (at least one)", prefer_key=True)
            return None
        key, value = next(iter(node.items()))
        at = loc + (key,)
        if key in ("all", "any"):
            return self.group(key, value, at)
        if key == "not":
            inner = self.condition(value, at)
            return Not(condition=inner, **self.position(loc)) if inner is not None else None
        if key in BEHAVIOUR_KEYS:
            return self.behaviour(key, value, at)
        if key in CONSENT_WORDS:
            self.fail(at, CONSENT_MESSAGE.format(key=key), prefer_key=True)
            return None
        if key not in FEATURES:
            hint = did_you_mean(key, list(FEATURES) + CONDITION_KEYS)
            self.fail(at, f"unknown feature '{key}'{hint or ': see docs/segments.md for every feature'}", prefer_key=True)
            return None
        return self.comparison(key, value, at)

    def group(self, key: str, value: Any, at: PathKey) -> Condition | None:
        if not isinstance(value, list) or not value:
            self.fail(at, f"'{key}' needs a list of conditions (lines starting with '- '), got {describe(value)}")
            return None
        parsed = [self.condition(item, at + (i,)) for i, item in enumerate(value)]
        if any(c is None for c in parsed):
            return None
        model = AllOf if key == "all" else AnyOf
        return model(conditions=parsed, **self.position(at[:-1]))

    def behaviour(self, key: str, value: Any, at: PathKey) -> Condition | None:
        where = self.position(at[:-1])
        if key == "bought":
            return self.bought(value, at, where)
        if key == "ordered_days_ago":
            if not is_int(value) or value < 0:
                self.fail(at, f"ordered_days_ago needs a whole number of days (0 or more), got {describe(value)}")
                return None
            if value > MAX_DAYS:
                self.fail(at, f"ordered_days_ago {value} is too far back: use at most {MAX_DAYS} days (100 years)")
                return None
            return OrderedDaysAgo(days=value, **where)
        if key == "birthday_today":
            if not isinstance(value, bool):
                self.fail(at, f"birthday_today needs true or false, got {describe(value)}")
                return None
            return BirthdayToday(expected=value, **where)
        if not isinstance(value, str) or not value:
            self.fail(at, f"{key} needs a segment name, got {describe(value)}")
            return None
        return InSegment(segment=value, member=(key == "in_segment"), **where)

    def bought(self, value: Any, at: PathKey, where: dict) -> Condition | None:
        if not isinstance(value, dict):
            self.fail(at, f"bought needs a mapping like '{{category: Coffee, within_days: 30}}', got {describe(value)}")
            return None
        try:
            spec = BoughtSpec.model_validate(value)
        except ValidationError as exc:
            self.problems.extend(pydantic_problems(self.doc, exc, BoughtSpec, base=at))
            return None
        skus, categories = as_list(spec.sku), as_list(spec.category)
        if bool(skus) == bool(categories):
            self.fail(at, "bought needs exactly one of 'sku' or 'category' (a name or a list of names)")
            return None
        return Bought(skus=skus, categories=categories, within_days=spec.within_days, **where)

    def comparison(self, feature: str, value: Any, at: PathKey) -> Condition | None:
        kind = FEATURES[feature].kind
        where = self.position(at[:-1])
        if not isinstance(value, dict):
            op = "in" if isinstance(value, list) else "eq"
            if op not in OPERATORS_BY_KIND[kind]:
                self.fail(at, f"'{feature}' is true or false: write '{feature}: true' or '{feature}: false', not a list")
                return None
            checked = self.operand(feature, kind, op, value, at)
            return None if checked is _INVALID else Compare(feature=feature, op=op, value=checked, **where)
        if not value:
            self.fail(at, f"no operator for '{feature}': write e.g. '{feature}: {{{OPERATORS_BY_KIND[kind][0]}: ...}}'")
            return None
        tests: list[Condition] = []
        for op, operand in value.items():
            if op not in OPERATORS:
                hint = did_you_mean(str(op), OPERATORS) or f"; operators: {', '.join(OPERATORS)}"
                self.fail(at + (op,), f"unknown operator '{op}'{hint}", prefer_key=True)
                continue
            if op not in OPERATORS_BY_KIND[kind]:
                self.fail(at + (op,), f"operator '{op}' does not apply to {kind} feature '{feature}'; "
                          f"use one of {', '.join(OPERATORS_BY_KIND[kind])}", prefer_key=True)
                continue
            checked = self.operand(feature, kind, op, operand, at + (op,))
            if checked is not _INVALID:
                tests.append(Compare(feature=feature, op=op, value=checked, **where))
        if len(tests) != len(value):
            return None
        return tests[0] if len(tests) == 1 else AllOf(conditions=tests, **where)

    def operand(self, feature: str, kind: FeatureKind, op: str, value: Any, at: PathKey) -> Any:
        if op == "is_null":
            if not isinstance(value, bool):
                self.fail(at, f"is_null needs true or false, got {describe(value)}")
                return _INVALID
            return value
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.fail(at, f"'{op}' needs a non-empty list like [a, b], got {describe(value)}")
                return _INVALID
            items = [self.scalar(feature, kind, v, at + (i,)) for i, v in enumerate(value)]
            return _INVALID if any(v is _INVALID for v in items) else items
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.fail(at, f"'between' needs two values [low, high], got {describe(value)}")
                return _INVALID
            low, high = (self.scalar(feature, kind, v, at + (i,)) for i, v in enumerate(value))
            if _INVALID in (low, high):
                return _INVALID
            if comparable(low, high) and sort_key(low) > sort_key(high):
                self.fail(at, f"'between' low value {value[0]} is after high value {value[1]}: swap them")
                return _INVALID
            return [low, high]
        if op == "contains" and not isinstance(value, str):
            self.fail(at, f"'contains' needs text, got {describe(value)}")
            return _INVALID
        return self.scalar(feature, kind, value, at)

    def scalar(self, feature: str, kind: FeatureKind, value: Any, at: PathKey) -> Any:
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(at, f"'{feature}' is a number; got {describe(value)}: write a number such as 3 or 2.5, without quotes")
                return _INVALID
            if not abs(value) <= MAX_NUMBER:  # also catches NaN
                shown = describe(value) if len(describe(value)) <= 20 else describe(value)[:12] + "\u2026"
                self.fail(at, f"'{feature}': {shown} is out of range: use a number between "
                          f"-{MAX_NUMBER:.0e} and {MAX_NUMBER:.0e}")
                return _INVALID
            return float(value)
        if kind == "flag":
            if not isinstance(value, bool):
                self.fail(at, f"'{feature}' is true or false; got {describe(value)}: write true or false")
                return _INVALID
            return value
        if kind == "text":
            if isinstance(value, bool):
                self.fail(at, f"'{feature}' is text but YAML read {str(value).lower()}: YAML treats yes/no/on/off/NO as "
                          "true/false, so quote the value, e.g. 'NO'")
                return _INVALID
            if not isinstance(value, (str, int, float)):
                self.fail(at, f"'{feature}' is text; got {describe(value)}: write one value such as 'Gold'")
                return _INVALID
            return str(value)
        parsed = parse_date(value)
        if parsed is None:
            self.fail(at, f"bad date {describe(value)} for '{feature}': {DATE_HELP}")
            return _INVALID
        too_far = date_out_of_range(parsed)
        if too_far:
            self.fail(at, f"date {describe(value)} for '{feature}' {too_far}")
            return _INVALID
        return parsed


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()


def parse_date(value: Any) -> DateValue | None:
    """A YAML date (2024-05-31) or relative text ('30 days ago', 'in 2 weeks', 'today')."""
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return DateValue(text=value.isoformat(), day=value)
    if not isinstance(value, str):
        return None
    text = " ".join(value.strip().lower().split())
    if text in NAMED_DAYS:
        return DateValue(text=text, offset=NAMED_DAYS[text])
    match = RELATIVE_DATE.match(text)
    if not match:
        try:
            return DateValue(text=text, day=date.fromisoformat(text))
        except ValueError:
            return None
    amount, unit, direction, ahead, ahead_unit = match.groups()
    if ahead is not None:
        return DateValue(text=text, offset=_count(ahead), unit=ahead_unit)
    return DateValue(text=text, offset=_count(amount) * (-1 if direction == "ago" else 1), unit=unit)


def _count(digits: str) -> int:
    """A relative date's count; absurdly long ones are capped (and then reported as too far)."""
    return int(digits) if len(digits) <= 12 else 10**12


def date_out_of_range(value: DateValue) -> str | None:
    """Why a date is too far from any run date to mean anything (and would overflow), or None."""
    if value.day is not None:
        if not MIN_YEAR <= value.day.year <= MAX_YEAR:
            return f"is out of range: use a year from {MIN_YEAR} to {MAX_YEAR}"
        return None
    if abs(value.offset) * UNIT_DAYS[value.unit] > MAX_DAYS:
        limit = MAX_DAYS // UNIT_DAYS[value.unit]
        return f"is too far from the run date: use at most {limit} {value.unit}s" + (
            "" if value.unit == "year" else " (100 years)")
    return None


def comparable(low: Any, high: Any) -> bool:
    """Whether two `between` operands can be ordered without knowing the run date."""
    if isinstance(low, DateValue) and isinstance(high, DateValue):
        return (low.day is None) == (high.day is None)
    return type(low) is type(high)


def sort_key(value: Any) -> Any:
    if isinstance(value, DateValue):
        if value.day is not None:
            return value.day.toordinal()
        return value.offset * {"day": 1, "week": 7, "month": 30, "year": 365}[value.unit]
    return value


def with_missing_key_hints(problems: list[Problem], expected_name: str) -> list[Problem]:
    """Say what to add for a missing top-level key."""
    hints = {
        "name": f"add 'name: {expected_name}' (the file name without .yaml)",
        "description": "add 'description:' with one line saying who is in the segment",
        "where": "add 'where:' with the condition, e.g. 'where: {days_since_last_order: {gte: 90}}'",
    }
    out = []
    for p in problems:
        key = p.message.removeprefix("missing required key '").removesuffix("'")
        if p.message.startswith("missing required key ") and key in hints:
            p = Problem(p.path, p.line, p.col, f"{p.message}: {hints[key]}", p.severity)
        out.append(p)
    return out


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def describe(value: Any) -> str:
    """How a YAML value reads back to the marketer."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}" if value else "an empty list"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def nodes_of(condition: Condition, kind: type[NodeT]) -> list[NodeT]:
    """Every condition of `kind` inside a condition tree, in file order."""
    if isinstance(condition, kind):
        return [condition]
    if isinstance(condition, (AllOf, AnyOf)):
        return [node for c in condition.conditions for node in nodes_of(c, kind)]
    if isinstance(condition, Not):
        return nodes_of(condition.condition, kind)
    return []


def referenced_segments(condition: Condition) -> list[InSegment]:
    """Every in_segment / not_in_segment inside a condition, in file order."""
    return nodes_of(condition, InSegment)

