"""Import customers, products and orders from CSV or Parquet, all rows or none.

Every row is validated before anything is written; each bad value is reported with file, row
(the CSV line number, header = line 1) and column, and what to do about it. Customers and
products are upserted by key; orders already in the store are skipped, so re-importing the
same file is safe. Column mapping: `--columns ours=theirs,...` (see docs/data.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from lojal.addresses import _ATOM, MAX_LENGTH, MAX_LOCAL, AddressError, mailbox_key
from lojal.addresses import normalize as normalize_address
from lojal.errors import DataImportError, Problem
from lojal.store import init_schema, parse, schema
from lojal.store.write import bulk_insert
from lojal.timezones import check_time_zone

MAX_LISTED = 50
LOCALES = {"en", "nb", "sv", "da"}
TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f", ""}
MAX_QUANTITY = 1_000_000
MAX_PRICE = 1e9


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # id, quantity, price, unit_price, share, str, date, datetime, bool, email, locale, country, currency, url, time_zone
    required: bool = True


SPECS: dict[str, list[Column]] = {
    "customers": [Column("customer_id", "id"), Column("email", "email"), Column("first_name", "str", False),
                  Column("locale", "locale"), Column("country", "country"), Column("time_zone", "time_zone"),
                  Column("birthday", "date", False), Column("created_at", "datetime"),
                  Column("consent_email", "bool"), Column("consent_at", "datetime", False),
                  Column("consent_source", "str", False)],
    "products": [Column("sku", "str"), Column("title", "str"), Column("category", "str"), Column("price", "price"),
                 Column("currency", "currency"), Column("image_url", "url", False),
                 Column("product_url", "url", False), Column("in_stock", "bool"), Column("margin", "share", False)],
    "orders": [Column("order_id", "id"), Column("customer_id", "id"), Column("placed_at", "datetime"),
               Column("sku", "str"), Column("quantity", "quantity"), Column("unit_price", "unit_price"),
               Column("currency", "currency"), Column("lojal_message_id", "message_id", False)],
}
MESSAGE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


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
    """(converted value, error message or None), by the strict parsers of lojal.store.parse."""
    if kind == "id":
        return parse.parse_int(value, low=0)
    if kind == "quantity":
        return parse.parse_int(value, low=1, high=MAX_QUANTITY)
    if kind == "price":
        return parse.parse_decimal(value, low=0, low_inclusive=False, high=MAX_PRICE)
    if kind == "unit_price":
        return parse.parse_decimal(value, low=0, high=MAX_PRICE)
    if kind == "date":
        return parse.parse_date(value)
    if kind == "datetime":
        return parse.parse_datetime(value)
    text = str(value).strip()
    if kind == "share":
        number, error = parse.parse_decimal(text.rstrip("%").strip(), low=0)
        if error is None and text.endswith("%"):
            number /= 100
        if error or not 0 <= number < 1:
            return None, f"'{text}' is not a share of the price; use a number from 0 to 1 (0.35) or a percentage (35%)"
        return number, None
    if kind == "bool":
        if text.lower() in TRUE:
            return True, None
        if text.lower() in FALSE:
            return False, None
        return None, f"'{text}' is not true/false (use true, false, 1, 0, yes or no)"
    if kind == "email":
        try:
            return normalize_address(text), None
        except AddressError as exc:
            return None, f"'{text}' is not a valid e-mail address: {exc}"
    if kind == "locale":
        return (text, None) if text in LOCALES else (None, f"'{text}' is not a supported locale; use one of en, nb, sv, da")
    if kind == "country":
        return (text.upper(), None) if len(text) == 2 and text.isascii() and text.isalpha() else (None, f"'{text}' is not a two-letter country code like NO")
    if kind == "currency":
        return (text.upper(), None) if len(text) == 3 and text.isascii() and text.isalpha() else (None, f"'{text}' is not a three-letter currency code like NOK")
    if kind == "time_zone":
        error = check_time_zone(text)
        return (None, error) if error else (text, None)
    if kind == "url":
        return (text, None) if text.startswith(("https://", "http://")) else (None, f"'{text}' is not an http(s) URL")
    if kind == "message_id":
        return _message_id(text)
    if any(ch in text for ch in "\r\n\x00"):
        return None, "contains a line break or NUL character"
    return text, None


def _message_id(text: str) -> tuple[str | None, str | None]:
    """An order's `lojal_message_id`: the `lojal_mid` value of the e-mail link the customer came from,
    or the landing URL carrying it (a URL without it attributes by last click: None)."""
    if text.startswith(("https://", "http://")):
        from lojal.tracking.links import message_id_of

        text = message_id_of(text) or ""
        if not text:
            return None, None
    if MESSAGE_ID.fullmatch(text):
        return text, None
    return None, (f"'{text[:80]}' is not a Lojal message id; use the lojal_mid value of the e-mail link "
                  "(letters, digits, . _ -, at most 64), the landing URL carrying it, or leave it empty")


def _too_long(kind: str, name: str, value) -> str | None:
    """The store's column length, checked here so PostgreSQL never refuses a row mid-import."""
    table = {"customers": schema.customers, "products": schema.products}.get(kind)
    column = table.c.get(name) if table is not None else None
    if name == "sku":
        column = schema.products.c.sku
    length = getattr(getattr(column, "type", None), "length", None)
    if length and isinstance(value, str) and len(value) > length:
        return f"{len(value)} characters, more than the {length} the store keeps; shorten it"
    return None


def validate_rows(path: Path, kind: str, raw: pd.DataFrame, mapping: dict[str, str]) -> tuple[pd.DataFrame, list[Problem]]:
    spec = SPECS[kind]
    problems = _header_problems(path, kind, list(raw.columns), mapping)
    if problems:
        return pd.DataFrame(), problems
    source = {c.name: mapping.get(c.name, c.name) for c in spec}
    out: dict[str, object] = {}
    for col in spec:
        their = source[col.name]
        if their not in raw.columns:
            continue
        out[col.name], found = _validate_column(path, kind, col, their, raw[their])
        problems += found
    return pd.DataFrame(out, index=raw.index), sorted(problems, key=lambda p: (p.line or 0))


def _header_problems(path: Path, kind: str, columns: list[str], mapping: dict[str, str]) -> list[Problem]:
    spec = SPECS[kind]
    problems: list[Problem] = []
    for ours in sorted(set(mapping) - {c.name for c in spec}):
        problems.append(Problem("--columns", None, None, f"'{ours}' is not a {kind} column; known: {', '.join(c.name for c in spec)}"))
    source = {c.name: mapping.get(c.name, c.name) for c in spec}
    for col in spec:
        if col.required and source[col.name] not in columns:
            problems.append(Problem(str(path), 1, None, f"missing column '{source[col.name]}' ({col.name}); add it or map it with --columns {col.name}=<your column>"))
    return problems


def _check_value(kind: str, col: Column, value) -> tuple[object, str | None]:
    """One cell, the per-value way: the reference every fast path agrees with."""
    if _is_blank(value):
        return None, (f"empty, but {col.name} is required" if col.required else None)
    converted, error = _convert(value, col.kind)
    return converted, error or _too_long(kind, col.name, converted)


def _validate_column(path: Path, kind: str, col: Column, their: str, series: pd.Series) -> tuple[object, list[Problem]]:
    """Converted values and row problems of one column. Text columns are checked once per distinct
    value, most values by a vectorized fast path; the rest cell by cell for the exact message."""
    if len(series) == 0 or pd.api.types.infer_dtype(series, skipna=False) != "string":
        return _validate_cells(path, kind, col, their, series)
    codes, uniques = pd.factorize(series)
    text = pd.Series(uniques, dtype="str")
    ok, fast = _fast_path(kind, col, text)
    values = fast if fast is not None else np.empty(len(text), dtype=object)
    errors = np.full(len(text), None, dtype=object)
    distinct = text.tolist()
    for j in np.flatnonzero(~ok):
        converted, errors[j] = _check_value(kind, col, distinct[j])
        if errors[j] is None:
            values[j] = converted if converted is not None else _MISSING.get(values.dtype.kind)
    rows = values[codes]
    bad = np.flatnonzero(errors != None)  # noqa: E711 (element-wise)
    problems = []
    if len(bad):
        index = series.index
        for pos in np.flatnonzero(np.isin(codes, bad)):
            problems.append(Problem(str(path), _row_label(path, index[pos]), None, f"column '{their}': {errors[codes[pos]]}"))
    return rows, problems


_MISSING = {"f": np.nan, "M": np.datetime64("NaT")}


def _validate_cells(path: Path, kind: str, col: Column, their: str, series: pd.Series) -> tuple[list, list[Problem]]:
    """Values that are not all text (Parquet's typed columns, missing values): cell by cell."""
    values, problems = [], []
    for i, value in zip(series.index, series.tolist()):
        converted, error = _check_value(kind, col, value)
        if error:
            problems.append(Problem(str(path), _row_label(path, i), None, f"column '{their}': {error}"))
        values.append(converted)
    return values, problems


_FAST_EMAIL = (rf"({_ATOM}(?:\.{_ATOM})*)@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+"
               r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)")


def _fast_path(kind: str, col: Column, text: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """(ok, values) for the distinct texts the fast path reads; values None when it reads none."""
    length = _max_length(kind, col.name)
    if col.kind == "id":
        return parse.fast_ints(text, 0, parse.INT64_MAX)
    if col.kind == "quantity":
        return parse.fast_ints(text, 1, MAX_QUANTITY)
    if col.kind == "price":
        return parse.fast_decimals(text, 0, MAX_PRICE, low_inclusive=False)
    if col.kind == "unit_price":
        return parse.fast_decimals(text, 0, MAX_PRICE)
    if col.kind == "date":
        return parse.fast_dates(text)
    if col.kind == "datetime":
        return parse.fast_datetimes(text)
    sizes = text.str.len().to_numpy()
    if col.kind == "email":
        parts = text.str.extract(rf"^{_FAST_EMAIL}$")
        ok = parts[0].notna().to_numpy() & (sizes <= min(MAX_LENGTH, length or MAX_LENGTH))
        ok &= (parts[0].str.len().fillna(MAX_LOCAL + 1).to_numpy() <= MAX_LOCAL)
        values = (parts[0] + "@" + parts[1].str.lower()).to_numpy(dtype=object, na_value=None)
        return ok, values
    if col.kind == "str":
        ok = (sizes > 0) & ~text.str.contains(r"[\r\n\x00]", regex=True).to_numpy(dtype=bool)
        ok &= (text.str.strip() == text).to_numpy(dtype=bool) & (sizes <= (length or sizes.max(initial=0)))
        return ok, text.to_numpy(dtype=object)
    return np.zeros(len(text), dtype=bool), None


def _max_length(kind: str, name: str) -> int | None:
    table = {"customers": schema.customers, "products": schema.products}.get(kind)
    column = schema.products.c.sku if name == "sku" else (table.c.get(name) if table is not None else None)
    return getattr(getattr(column, "type", None), "length", None)


def _check_keys(path: Path, kind: str, frame: pd.DataFrame, engine: Engine) -> list[Problem]:
    problems = []
    key = {"customers": "customer_id", "products": "sku", "orders": None}[kind]
    if key:
        dup = frame[key].duplicated(keep="first")
        for i in frame.index[dup]:
            problems.append(Problem(str(path), _row_label(path, i), None, f"{key} {frame.at[i, key]} appears twice in the file"))
    if kind == "customers":
        problems += _mailbox_problems(path, frame, engine)
    if kind == "orders":
        with engine.connect() as conn:
            customers = {r for (r,) in conn.execute(select(schema.customers.c.customer_id))}
            skus = {r for (r,) in conn.execute(select(schema.products.c.sku))}
        for i in frame.index[~frame["customer_id"].isin(customers)]:
            problems.append(Problem(str(path), _row_label(path, i), None, f"unknown customer_id {frame.at[i, 'customer_id']}: import customers first"))
        for i in frame.index[~frame["sku"].isin(skus)]:
            problems.append(Problem(str(path), _row_label(path, i), None, f"unknown sku '{frame.at[i, 'sku']}': import products first"))
        problems += _order_problems(path, frame)
    return sorted(problems, key=lambda p: (p.line or 0, p.message))


def _mailbox_keys(emails: pd.Series) -> pd.Series:
    """mailbox_key of each normalized address; plain ASCII ones (the fast pattern) vectorized."""
    text = emails.astype("str")
    plain = np.array(text.str.fullmatch(_FAST_EMAIL).fillna(False), dtype=bool)
    keys = text.str.lower().astype(object)
    if not plain.all():
        keys[~plain] = emails[~plain].map(mailbox_key)
    return keys


def _mailbox_problems(path: Path, frame: pd.DataFrame, engine: Engine) -> list[Problem]:
    """Two customers with the same mailbox (addresses differing only in case), in the file or
    against the store, are a row error naming both: they would be mailed twice."""
    problems = []
    keys = _mailbox_keys(frame["email"])
    dup = keys.duplicated(keep="first").to_numpy()
    if dup.any():
        first = pd.Series(frame.index[~dup], index=keys[~dup].to_numpy())
        for i in frame.index[dup]:
            j = first[keys[i]]
            problems.append(Problem(str(path), _row_label(path, i), None,
                                    f"e-mail '{frame.at[i, 'email']}' (customer_id {frame.at[i, 'customer_id']}) is the same "
                                    f"mailbox as '{frame.at[j, 'email']}' (customer_id {frame.at[j, 'customer_id']}, row "
                                    f"{_row_label(path, j)}): addresses differ only in case; keep one customer"))
    with engine.connect() as conn:
        stored = pd.DataFrame(conn.execute(select(schema.customers.c.customer_id, schema.customers.c.email)).all(),
                              columns=["customer_id", "email"])
    if len(stored):
        stored["key"] = _mailbox_keys(stored["email"]).to_numpy()
        stored = stored.drop_duplicates("key", keep="last").set_index("key")
        owner = keys.map(stored["customer_id"])
        clash = owner.notna().to_numpy() & (owner.fillna(-1).astype("int64").to_numpy()
                                             != frame["customer_id"].astype("int64").to_numpy())
        for i in frame.index[clash]:
            cid, email = stored.at[keys[i], "customer_id"], stored.at[keys[i], "email"]
            problems.append(Problem(str(path), _row_label(path, i), None,
                                    f"e-mail '{frame.at[i, 'email']}' (customer_id {frame.at[i, 'customer_id']}) is already "
                                    f"the address of customer_id {int(cid)} ('{email}') in the store; one mailbox is "
                                    "one customer"))
    return problems


def _order_problems(path: Path, frame: pd.DataFrame) -> list[Problem]:
    """Every line of one order must carry the same customer, time and currency as its first line."""
    problems = []
    columns = ["customer_id", "placed_at", "currency"]
    heads = frame.groupby("order_id", sort=False)[columns].transform("first")
    for column in columns:
        for i in frame.index[(frame[column] != heads[column]).to_numpy()]:
            problems.append(Problem(str(path), _row_label(path, i), None,
                                    f"order {frame.at[i, 'order_id']}: {column} {frame.at[i, column]} differs from "
                                    f"{heads.at[i, column]} on the order's first line; every line of an order "
                                    "has the same customer_id, placed_at and currency"))
    return problems


CHUNK_ROWS = 250_000
Report = Callable[[str, int], None]


def _quiet(stage: str, rows: int) -> None:
    pass


def import_file(engine: Engine, kind: str, path: Path, columns: str | None = None,
                progress: Report | None = None) -> dict[str, int]:
    """Import one file, all rows or none. `progress(stage, rows)` hears of rows validated
    ("validating") and written ("writing") as the work goes."""
    if kind not in SPECS:
        raise DataImportError([Problem(str(path), None, None, f"unknown kind '{kind}'; use customers, products or orders")])
    report = progress or _quiet
    init_schema(engine)
    mapping = parse_mapping(columns)
    frame, problems = _read_and_validate(path, kind, mapping, report)
    if not problems:
        problems = _check_keys(path, kind, frame, engine)
    if problems:
        listed = problems[:MAX_LISTED]
        more = len(problems) - len(listed)
        summary = "\n".join(str(p) for p in listed) + (f"\n... and {more} more problems" if more else "")
        raise DataImportError(problems, f"nothing imported: {len(problems)} problem(s)\n{summary}")
    try:
        return _write(engine, kind, frame, report)
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise DataImportError([Problem(str(path), None, None, f"the store refused the rows ({detail}); "
                                       "nothing was imported")]) from None


def _read_and_validate(path: Path, kind: str, mapping: dict[str, str], report: Report) -> tuple[pd.DataFrame, list[Problem]]:
    """Chunk by chunk (CSV is read CHUNK_ROWS rows at a time): only converted, typed columns are kept."""
    frames: list[pd.DataFrame] = []
    problems: list[Problem] = []
    for number, chunk in enumerate(read_chunks(path)):
        if number == 0:
            header = _header_problems(path, kind, list(chunk.columns), mapping)
            if header:
                return pd.DataFrame(), header
        checked, found = validate_rows(path, kind, chunk, mapping)
        problems += found
        if not problems:
            frames.append(checked)
        report("validating", len(chunk))
    if problems:
        return pd.DataFrame(), problems
    return (frames[0] if len(frames) == 1 else pd.concat(frames)), []


def read_chunks(path: Path) -> Iterator[pd.DataFrame]:
    """The file's rows in chunks, index counting on from chunk to chunk. Parquet is read whole."""
    if path.suffix.lower() in (".parquet", ".pq"):
        table = read_table(path)
        for start in range(0, max(len(table), 1), CHUNK_ROWS):
            yield table.iloc[start:start + CHUNK_ROWS]
        return
    if not path.exists():
        raise DataImportError([Problem(str(path), None, None, "file not found")])
    options = dict(dtype=str, keep_default_na=False, encoding="utf-8")
    try:
        reader = pd.read_csv(path, chunksize=CHUNK_ROWS, **options)
        empty = True
        for chunk in reader:
            empty = False
            yield chunk
        if empty:
            yield pd.read_csv(path, nrows=0, **options)
    except UnicodeDecodeError:
        raise DataImportError([Problem(str(path), None, None, "not UTF-8 text; save the file as UTF-8")]) from None
    except DataImportError:
        raise
    except Exception as exc:
        raise DataImportError([Problem(str(path), None, None, f"cannot read as CSV: {exc}")]) from None


def _write(engine: Engine, kind: str, frame: pd.DataFrame, report: Report = _quiet) -> dict[str, int]:
    with engine.begin() as conn:
        if kind in ("customers", "products"):
            key = "customer_id" if kind == "customers" else "sku"
            if kind == "customers":
                frame["first_name"] = frame.get("first_name", pd.Series("", index=frame.index)).fillna("")
            bulk_insert(conn, schema.customers if kind == "customers" else schema.products, frame, key,
                        lambda n: report("writing", n))
            return {kind: len(frame)}
        existing = {r for (r,) in conn.execute(select(schema.orders.c.order_id))}
        new = frame[~frame["order_id"].isin(existing)].copy()
        new["line_no"] = new.groupby("order_id").cumcount() + 1
        firsts = {c: (c, "first") for c in ("customer_id", "placed_at", "currency", "lojal_message_id") if c in new}
        heads = new.groupby("order_id", as_index=False).agg(**firsts)
        bulk_insert(conn, schema.orders, heads)
        bulk_insert(conn, schema.order_lines, new[["order_id", "line_no", "sku", "quantity", "unit_price"]],
                    progress=lambda n: report("writing", n))
        return {"orders": len(heads), "order lines": len(new),
                "orders already present (skipped)": int(frame.loc[frame["order_id"].isin(existing), "order_id"].nunique())}
