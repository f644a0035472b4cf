"""Strict parsers for imported values: each reads exactly its documented format or says why not.

Every parser takes one raw cell (text from a CSV, or a value from Parquet) and returns
`(value, None)` or `(None, message)`. Nothing is guessed: no thousands separators, no decimal
commas, no month-first dates, no `now`, no ids through floating point.

- whole numbers (`parse_int`): optional sign and digits (`9007199254740993` stays exact); from
  Parquet an integer column, or a float that is exactly a whole number below 2**53.
- decimals (`parse_decimal`): digits with an optional `.` and decimals (`1299`, `1299.50`); a
  comma is refused because `1,299` could mean 1299 or 1.299.
- dates (`parse_date`): ISO 8601 `YYYY-MM-DD`.
- times (`parse_datetime`): ISO 8601 `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` with an optional
  `Z` or `±HH:MM` offset (converted to UTC; no offset means UTC); returned as naive UTC.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

Parsed = tuple[Any, str | None]

INT64_MAX = 2**63 - 1
FLOAT_EXACT = 2**53
MIN_YEAR, MAX_YEAR = 1900, 2199
_INT = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:\d{2})?$")
DATE_HELP = "use ISO 8601 like 2026-11-23"
DATETIME_HELP = "use ISO 8601 like 2026-11-23 or 2026-11-23T14:05:00Z"


def _text(value: Any) -> str:
    return str(value).strip()


def parse_int(value: Any, *, low: int = -INT64_MAX, high: int = INT64_MAX) -> Parsed:
    """A whole number within [low, high], read exactly."""
    if isinstance(value, (bool, np.bool_)):
        return None, f"'{value}' is not a whole number"
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            return None, f"'{value}' is not a whole number"
        if abs(value) >= FLOAT_EXACT:
            return None, (f"'{value}' is a floating-point number too large to be exact; store whole numbers as "
                          "integers or text")
        number = int(value)
    else:
        text = _text(value)
        if not _INT.match(text):
            hint = ("; write every digit, not scientific notation (Excel: format the column as text)"
                    if re.match(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$", text) else "")
            return None, f"'{text}' is not a whole number{hint}"
        number = int(text)
    if not low <= number <= high:
        return None, f"'{number}' is out of range: use a whole number from {low:,} to {high:,}".replace(",", " ")
    return number, None


def parse_decimal(value: Any, *, low: float | None = None, high: float = 1e12, low_inclusive: bool = True) -> Parsed:
    """A finite decimal number with a dot for decimals, within the bounds."""
    if isinstance(value, (bool, np.bool_)):
        return None, f"'{value}' is not a number"
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        text = str(value)
    else:
        text = _text(value)
        if "," in text:
            return None, (f"'{text}' is ambiguous: write numbers with a dot for decimals and no thousands separator, "
                          "e.g. 1299 or 12.99")
        if not _DECIMAL.match(text):
            return None, f"'{text}' is not a number"
        try:
            number = float(Decimal(text))
        except InvalidOperation:
            return None, f"'{text}' is not a number"
    if not math.isfinite(number):
        return None, f"'{text}' is not a finite number"
    if low is not None and (number < low or (number == low and not low_inclusive)):
        bound = f"more than {low:g}" if not low_inclusive else f"at least {low:g}"
        return None, f"'{text}' is out of range: it must be {bound}"
    if number > high:
        return None, f"'{text}' is out of range: it must be at most {high:g}"
    return number, None


def _in_years(stamp: datetime | date, text: str, help_text: str) -> str | None:
    if not MIN_YEAR <= stamp.year <= MAX_YEAR:
        return f"'{text}' is out of range: use a year from {MIN_YEAR} to {MAX_YEAR}"
    return None


def parse_date(value: Any) -> Parsed:
    """A calendar day, ISO 8601 `YYYY-MM-DD` (or a date from Parquet)."""
    if isinstance(value, (datetime, pd.Timestamp)):
        return None, f"'{value}' is a time, not a date; {DATE_HELP}"
    if isinstance(value, date):
        day = value
        text = value.isoformat()
    else:
        text = _text(value)
        if not _DATE.match(text):
            return None, f"'{text}' is not a date; {DATE_HELP}"
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            return None, f"'{text}' is not a date ({exc}); {DATE_HELP}"
    error = _in_years(day, text, DATE_HELP)
    return (None, error) if error else (day, None)


def parse_datetime(value: Any) -> Parsed:
    """A moment, ISO 8601, returned as naive UTC (a time without offset is UTC)."""
    if isinstance(value, (datetime, pd.Timestamp)) and not pd.isna(value):
        stamp = pd.Timestamp(value).to_pydatetime()
        text = stamp.isoformat()
    elif isinstance(value, date):
        stamp = datetime.combine(value, datetime.min.time())
        text = value.isoformat()
    else:
        text = _text(value)
        if not _DATETIME.match(text):
            return None, f"'{text}' is not a date; {DATETIME_HELP}"
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            return None, f"'{text}' is not a date ({exc}); {DATETIME_HELP}"
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(timezone.utc).replace(tzinfo=None)
    error = _in_years(stamp, text, DATETIME_HELP)
    return (None, error) if error else (stamp, None)
