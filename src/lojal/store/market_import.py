"""`lojal import prices` and `lojal import translations`: products per market and per locale.

    prices:        sku, market, currency, price        (one row per product and market it is sold in)
    translations:  sku, locale, title, category         (category optional)

All rows or none, like the other imports (lojal.store.importer): every row is checked first and each
problem is reported as `file:row: column 'x': what is wrong`. Prices are checked against
config/markets.yaml (the market must exist and the currency be the market's). Rows are upserted by
(sku, market) and (sku, locale), so importing the same file again is safe.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lojal.errors import DataImportError, Problem
from lojal.markets import Markets
from lojal.store import init_schema, schema
from lojal.store.importer import MAX_LISTED, Column, _convert, _is_blank, _row_label, parse_mapping, read_table
from lojal.store.write import chunked_records

MARKET_SPECS: dict[str, list[Column]] = {
    "prices": [Column("sku", "str"), Column("market", "str"), Column("currency", "currency"), Column("price", "price")],
    "translations": [Column("sku", "str"), Column("locale", "locale"), Column("title", "str"),
                     Column("category", "str", False)],
}
KEYS = {"prices": ("sku", "market"), "translations": ("sku", "locale")}
TABLES = {"prices": schema.product_prices, "translations": schema.product_texts}


def _validate(path: Path, kind: str, raw: pd.DataFrame, mapping: dict[str, str]) -> tuple[pd.DataFrame, list[Problem]]:
    spec = MARKET_SPECS[kind]
    problems = [Problem("--columns", None, None, f"'{ours}' is not a {kind} column; known: "
                        f"{', '.join(c.name for c in spec)}") for ours in sorted(set(mapping) - {c.name for c in spec})]
    source = {c.name: mapping.get(c.name, c.name) for c in spec}
    problems += [Problem(str(path), 1, None, f"missing column '{source[c.name]}' ({c.name}); add it or map it with "
                         f"--columns {c.name}=<your column>") for c in spec if c.required and source[c.name] not in raw.columns]
    if problems:
        return pd.DataFrame(), problems
    out: dict[str, list] = {}
    for col in spec:
        if source[col.name] not in raw.columns:
            out[col.name] = [None] * len(raw)
            continue
        values = []
        for i, value in enumerate(raw[source[col.name]].tolist()):
            converted, error = (None, f"empty, but {col.name} is required" if col.required else None) \
                if _is_blank(value) else _convert(value, col.kind)
            if error:
                problems.append(Problem(str(path), _row_label(path, i), None, f"column '{source[col.name]}': {error}"))
            values.append(converted)
        out[col.name] = values
    return pd.DataFrame(out, index=raw.index), problems


def _check_rows(path: Path, kind: str, frame: pd.DataFrame, skus: set[str], markets: Markets | None) -> list[Problem]:
    problems = []
    keys = list(KEYS[kind])
    for i in frame.index[frame.duplicated(keys, keep="first")]:
        problems.append(Problem(str(path), _row_label(path, i), None,
                                f"{' '.join(f'{k} {frame.at[i, k]}' for k in keys)} appears twice in the file"))
    for i in frame.index[~frame["sku"].isin(skus)]:
        problems.append(Problem(str(path), _row_label(path, i), None, f"unknown sku '{frame.at[i, 'sku']}': import products first"))
    if kind == "prices":
        if markets is not None:
            for i in frame.index:
                market_id, currency = frame.at[i, "market"], frame.at[i, "currency"]
                if market_id not in markets.ids:
                    problems.append(Problem(str(path), _row_label(path, i), None, f"column 'market': unknown market "
                                            f"'{market_id}'; config/markets.yaml has {', '.join(markets.ids)}"))
                elif currency != markets.get(market_id).currency:
                    problems.append(Problem(str(path), _row_label(path, i), None, f"column 'currency': {currency} is "
                                            f"not market {market_id}'s currency ({markets.get(market_id).currency})"))
    return problems


def import_market_file(engine: Engine, kind: str, path: Path, columns: str | None = None,
                       markets: Markets | None = None) -> dict[str, int]:
    """Validate every row, then write all of them (upsert) or raise DataImportError listing every problem."""
    init_schema(engine)
    frame, problems = _validate(path, kind, read_table(path), parse_mapping(columns))
    if not frame.empty:  # rows are checked against each other and the store even when some values were bad
        with engine.connect() as conn:
            skus = {str(s) for (s,) in conn.execute(select(schema.products.c.sku))}
        problems = sorted(problems + _check_rows(path, kind, frame, skus, markets),
                          key=lambda p: (p.line if isinstance(p.line, int) else 0, p.message))
    if problems:
        listed = problems[:MAX_LISTED]
        more = len(problems) - len(listed)
        summary = "\n".join(str(p) for p in listed) + (f"\n... and {more} more problems" if more else "")
        raise DataImportError(problems, f"nothing imported: {len(problems)} problem(s)\n{summary}")
    table = TABLES[kind]
    with engine.begin() as conn:
        insert = pg_insert if conn.engine.dialect.name == "postgresql" else sqlite_insert
        for batch in chunked_records(frame):
            stmt = insert(table)
            stmt = stmt.on_conflict_do_update(index_elements=list(KEYS[kind]),
                                              set_={c: stmt.excluded[c] for c in batch[0] if c not in KEYS[kind]})
            conn.execute(stmt, batch)
    return {"product prices" if kind == "prices" else "product translations": len(frame)}
