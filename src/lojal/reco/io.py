"""Reading an orders file (CSV or Parquet) for the offline evaluation, with a column mapping."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lojal.errors import DataImportError, Problem

REQUIRED_KEYS = ("customer", "product", "time", "quantity", "price")
OPTIONAL_KEYS = ("order", "category")
# The UCI Online Retail names, the default mapping of `lojal reco evaluate --columns`.
DEFAULT_COLUMNS = {"customer": "CustomerID", "product": "StockCode", "time": "InvoiceDate",
                   "quantity": "Quantity", "price": "UnitPrice", "order": "InvoiceNo"}


class OrdersFileError(DataImportError):
    """The orders file cannot be read (`option` "--orders") or does not match the column mapping
    (`option` "--columns")."""

    def __init__(self, problems, summary=None, option: str = "--orders"):
        super().__init__(problems, summary)
        self.option = option


@dataclass(frozen=True)
class CleaningReport:
    rows_read: int
    missing_customer: int
    cancelled: int
    non_positive_quantity: int
    non_positive_price: int
    unparseable_time: int
    excluded_product: int
    rows_kept: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def parse_columns(text: str | None) -> dict[str, str]:
    """"customer=CustomerID,product=StockCode,..." → mapping over the defaults."""
    mapping = dict(DEFAULT_COLUMNS)
    if not text:
        return mapping
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, column = part.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or not column:
            raise OrdersFileError([], f"'{part}' is not key=column (e.g. customer=CustomerID)", "--columns")
        if key not in REQUIRED_KEYS + OPTIONAL_KEYS:
            known = ", ".join(REQUIRED_KEYS + OPTIONAL_KEYS)
            raise OrdersFileError([], f"unknown key '{key}'; the keys are {known}", "--columns")
        mapping[key] = column
    return mapping


def read_orders(path: Path, columns: dict[str, str],
                product_pattern: str | None = None) -> tuple[pd.DataFrame, CleaningReport]:
    """Order lines as customer_id, sku, placed_at, quantity, unit_price[, order_id, category];
    drops (and counts) rows without a customer, cancelled invoices (order id starting with "C"),
    non-positive quantity or price, unparseable times and products not matching `product_pattern`."""
    raw = _read_table(Path(path))
    renamed = _select(raw, columns, Path(path))
    return clean_orders(renamed, product_pattern)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise OrdersFileError([Problem(str(path), None, None, "file not found")], f"{path}: file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    except Exception as exc:  # pyarrow/pandas raise many types for a corrupt file
        message = f"cannot read as {'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'}: {exc}"
        raise OrdersFileError([Problem(str(path), None, None, message)], f"{path}: {message}") from exc


def _select(raw: pd.DataFrame, columns: dict[str, str], path: Path) -> pd.DataFrame:
    problems = [Problem(str(path), None, None,
                        f"column '{columns[key]}' (mapped to {key}) not found; the file has: "
                        f"{', '.join(map(str, raw.columns))}. Map it with --columns {key}=<column>")
                for key in REQUIRED_KEYS if columns[key] not in raw.columns]
    if problems:
        raise OrdersFileError(problems, option="--columns")
    present = {key: column for key, column in columns.items() if column in raw.columns}
    return raw[list(present.values())].rename(columns={v: k for k, v in present.items()})


def parse_times(values: pd.Series) -> pd.Series:
    """Datetimes from a datetime column or text: ISO 8601 first (fast), then any other layout per value
    (e.g. the original UCI CSV's "12/1/2010 8:26"); what still fails becomes NaT and is counted."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
    retry = parsed.isna() & values.notna()
    if retry.any():
        parsed[retry] = pd.to_datetime(values[retry], format="mixed", errors="coerce")
    return parsed


def clean_orders(frame: pd.DataFrame, product_pattern: str | None = None) -> tuple[pd.DataFrame, CleaningReport]:
    """`frame` has the mapping's keys as columns."""
    total = len(frame)
    customer = pd.to_numeric(frame["customer"], errors="coerce")
    quantity = pd.to_numeric(frame["quantity"], errors="coerce")
    price = pd.to_numeric(frame["price"], errors="coerce")
    placed_at = parse_times(frame["time"])
    sku = frame["product"].astype("string").str.strip().str.upper()
    cancelled = (frame["order"].astype("string").str.upper().str.startswith("C").fillna(False)
                 if "order" in frame else pd.Series(False, index=frame.index))

    steps = [("missing_customer", customer.isna()), ("cancelled", cancelled.astype(bool)),
             ("non_positive_quantity", ~(quantity > 0)), ("non_positive_price", ~(price > 0)),
             ("unparseable_time", placed_at.isna())]
    if product_pattern:
        steps.append(("excluded_product", ~sku.str.contains(re.compile(product_pattern)).fillna(False).astype(bool)))
    keep = pd.Series(True, index=frame.index)
    counts = {}
    for name, drop in steps:
        counts[name] = int((keep & drop).sum())
        keep &= ~drop
    counts.setdefault("excluded_product", 0)
    lines = pd.DataFrame({"customer_id": customer[keep].astype("int64"), "sku": sku[keep].astype(str),
                          "placed_at": placed_at[keep].astype("datetime64[ns]"),
                          "quantity": quantity[keep].astype(float), "unit_price": price[keep].astype(float)})
    if "order" in frame:
        lines["order_id"] = frame["order"][keep].astype(str)
    if "category" in frame:
        lines["category"] = frame["category"][keep]
    report = CleaningReport(rows_read=total, rows_kept=int(keep.sum()), **counts)
    return lines.reset_index(drop=True), report
