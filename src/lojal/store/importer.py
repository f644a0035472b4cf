"""Import customers, products and orders from CSV or Parquet, all rows or none.

Every row is validated before anything is written; each bad value is reported with file, row
(the CSV line number, header = line 1) and column, and what to do about it. Customers and
products are upserted by key; orders already in the store are skipped, so re-importing the
same file is safe. Column mapping: `--columns ours=theirs,...` (see docs/data.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lojal.errors import DataImportError, Problem
from lojal.store import init_schema, schema
from lojal.store.write import chunked_records
from lojal.timezones import check_time_zone

MAX_LISTED = 50
LOCALES = {"en", "nb", "sv", "da"}
TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f", ""}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # int, float, share, str, date, datetime, bool, email, locale, currency, url, time_zone
    required: bool = True


SPECS: dict[str, list[Column]] = {
    "customers": [Column("customer_id", "int"), Column("email", "email"), Column("first_name", "str", False),
                  Column("locale", "locale"), Column("country", "country"), Column("time_zone", "time_zone"),
                  Column("birthday", "date", False), Column("created_at", "datetime"),
                  Column("consent_email", "bool"), Column("consent_at", "datetime", False),
                  Column("consent_source", "str", False)],
    "products": [Column("sku", "str"), Column("title", "str"), Column("category", "str"), Column("price", "float"),
                 Column("currency", "currency"), Column("image_url", "url", False),
                 Column("product_url", "url", False), Column("in_stock", "bool"), Column("margin", "share", False)],
    "orders": [Column("order_id", "int"), Column("customer_id", "int"), Column("placed_at", "datetime"),
               Column("sku", "str"), Column("quantity", "int"), Column("unit_price", "float"),
               Column("currency", "currency")],
}


def parse_mapping(text: str | None) -> dict[str, str]:
    """'ours=theirs,...' -> {ours: theirs}."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        ours, sep, theirs = part.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise DataImportError([Problem("--columns", None, None, f"'{part}' is not ours=theirs, e.g. customer_id=CustomerID")])
        mapping[ours.strip()] = theirs.strip()
    return mapping


def read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataImportError([Problem(str(path), None, None, "file not found")])
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path).astype(object)
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise DataImportError([Problem(str(path), None, None, "not UTF-8 text; save the file as UTF-8")]) from None
    except Exception as exc:
        raise DataImportError([Problem(str(path), None, None, f"cannot read as {'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'}: {exc}")]) from None


def _row_label(path: Path, index: int) -> int:
    return index + 2 if path.suffix.lower() == ".csv" else index + 1


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or (isinstance(value, str) and not value.strip()) or value is pd.NA


def _convert(value, kind: str):
    """(converted value, error message or None)."""
    text = str(value).strip()
    if kind == "int":
        try:
            number = float(text)
        except ValueError:
            return None, f"'{text}' is not a whole number"
        return (int(number), None) if number.is_integer() else (None, f"'{text}' is not a whole number")
    if kind == "float":
        try:
            return float(text.replace(",", ".")), None
        except ValueError:
            return None, f"'{text}' is not a number"
    if kind == "share":
        number, error = _convert(text.rstrip("%").strip(), "float")
        if error is None and text.endswith("%"):
            number /= 100
        if error or not 0 <= number < 1:
            return None, f"'{text}' is not a share of the price; use a number from 0 to 1 (0.35) or a percentage (35%)"
        return number, None
    if kind in ("date", "datetime"):
        stamp = pd.to_datetime(text, errors="coerce", utc=True)
        if pd.isna(stamp):
            return None, f"'{text}' is not a date; use ISO 8601 like 2026-11-23 or 2026-11-23T14:05:00Z"
        stamp = stamp.tz_convert(None).to_pydatetime()
        return (stamp.date() if kind == "date" else stamp), None
    if kind == "bool":
        if text.lower() in TRUE:
            return True, None
        if text.lower() in FALSE:
            return False, None
        return None, f"'{text}' is not true/false (use true, false, 1, 0, yes or no)"
    if kind == "email":
        try:
            return validate_email(text, check_deliverability=False).normalized, None
        except EmailNotValidError as exc:
            return None, f"'{text}' is not a valid e-mail address: {exc}"
    if kind == "locale":
        return (text, None) if text in LOCALES else (None, f"'{text}' is not a supported locale; use one of en, nb, sv, da")
    if kind == "country":
        return (text.upper(), None) if len(text) == 2 and text.isalpha() else (None, f"'{text}' is not a two-letter country code like NO")
    if kind == "currency":
        return (text.upper(), None) if len(text) == 3 and text.isalpha() else (None, f"'{text}' is not a three-letter currency code like NOK")
    if kind == "time_zone":
        error = check_time_zone(text)
        return (None, error) if error else (text, None)
    if kind == "url":
        return (text, None) if text.startswith(("https://", "http://")) else (None, f"'{text}' is not an http(s) URL")
    if any(ch in text for ch in "\r\n\x00"):
        return None, "contains a line break or NUL character"
    return text, None


def validate_rows(path: Path, kind: str, raw: pd.DataFrame, mapping: dict[str, str]) -> tuple[pd.DataFrame, list[Problem]]:
    spec = SPECS[kind]
    problems: list[Problem] = []
    unknown = set(mapping) - {c.name for c in spec}
    for ours in sorted(unknown):
        problems.append(Problem("--columns", None, None, f"'{ours}' is not a {kind} column; known: {', '.join(c.name for c in spec)}"))
    source = {c.name: mapping.get(c.name, c.name) for c in spec}
    for col in spec:
        if col.required and source[col.name] not in raw.columns:
            problems.append(Problem(str(path), 1, None, f"missing column '{source[col.name]}' ({col.name}); add it or map it with --columns {col.name}=<your column>"))
    if problems:
        return pd.DataFrame(), problems
    out: dict[str, list] = {}
    for col in spec:
        their = source[col.name]
        if their not in raw.columns:
            continue
        values = []
        for i, value in enumerate(raw[their].tolist()):
            if _is_blank(value):
                if col.required:
                    problems.append(Problem(str(path), _row_label(path, i), None, f"column '{their}': empty, but {col.name} is required"))
                values.append(None)
                continue
            converted, error = _convert(value, col.kind)
            if error:
                problems.append(Problem(str(path), _row_label(path, i), None, f"column '{their}': {error}"))
            values.append(converted)
        out[col.name] = values
    return pd.DataFrame(out), problems


def _check_keys(path: Path, kind: str, frame: pd.DataFrame, engine: Engine) -> list[Problem]:
    problems = []
    key = {"customers": "customer_id", "products": "sku", "orders": None}[kind]
    if key:
        dup = frame[key].duplicated(keep="first")
        for i in frame.index[dup]:
            problems.append(Problem(str(path), _row_label(path, i), None, f"{key} {frame.at[i, key]} appears twice in the file"))
    if kind == "orders":
        with engine.connect() as conn:
            customers = {r for (r,) in conn.execute(select(schema.customers.c.customer_id))}
            skus = {r for (r,) in conn.execute(select(schema.products.c.sku))}
        for i in frame.index[~frame["customer_id"].isin(customers)]:
            problems.append(Problem(str(path), _row_label(path, i), None, f"unknown customer_id {frame.at[i, 'customer_id']}: import customers first"))
        for i in frame.index[~frame["sku"].isin(skus)]:
            problems.append(Problem(str(path), _row_label(path, i), None, f"unknown sku '{frame.at[i, 'sku']}': import products first"))
    return problems


def import_file(engine: Engine, kind: str, path: Path, columns: str | None = None) -> dict[str, int]:
    if kind not in SPECS:
        raise DataImportError([Problem(str(path), None, None, f"unknown kind '{kind}'; use customers, products or orders")])
    init_schema(engine)
    mapping = parse_mapping(columns)
    frame, problems = validate_rows(path, kind, read_table(path), mapping)
    if not problems:
        problems = _check_keys(path, kind, frame, engine)
    if problems:
        listed = problems[:MAX_LISTED]
        more = len(problems) - len(listed)
        summary = "\n".join(str(p) for p in listed) + (f"\n... and {more} more problems" if more else "")
        raise DataImportError(problems, f"nothing imported: {len(problems)} problem(s)\n{summary}")
    return _write(engine, kind, frame)


def _upsert(conn, table, rows: list[dict], key: str) -> None:
    dialect = conn.engine.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=[key],
                                      set_={c: stmt.excluded[c] for c in rows[0] if c != key})
    conn.execute(stmt, rows)


def _write(engine: Engine, kind: str, frame: pd.DataFrame) -> dict[str, int]:
    with engine.begin() as conn:
        if kind in ("customers", "products"):
            key = "customer_id" if kind == "customers" else "sku"
            if kind == "customers":
                frame["first_name"] = frame.get("first_name", pd.Series("", index=frame.index)).fillna("")
            for batch in chunked_records(frame):
                _upsert(conn, schema.customers if kind == "customers" else schema.products, batch, key)
            return {kind: len(frame)}
        existing = {r for (r,) in conn.execute(select(schema.orders.c.order_id))}
        new = frame[~frame["order_id"].isin(existing)].copy()
        new["line_no"] = new.groupby("order_id").cumcount() + 1
        heads = new.groupby("order_id", as_index=False).agg(customer_id=("customer_id", "first"),
                                                            placed_at=("placed_at", "first"), currency=("currency", "first"))
        for batch in chunked_records(heads):
            conn.execute(schema.orders.insert(), batch)
        for batch in chunked_records(new[["order_id", "line_no", "sku", "quantity", "unit_price"]]):
            conn.execute(schema.order_lines.insert(), batch)
        return {"orders": len(heads), "order lines": len(new),
                "orders already present (skipped)": int(frame.loc[frame["order_id"].isin(existing), "order_id"].nunique())}
