"""Import at scale: the vectorized checks give exactly the per-row answers, chunked reading keeps
row numbers, and a large file goes in whole or not at all (SQLite and PostgreSQL)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func, select

from lojal.errors import DataImportError
from lojal.store import connect, schema
from lojal.store import importer
from lojal.store.importer import SPECS, _validate_cells, _validate_column, import_file

TRICKY = {
    "id": ["1", "007", "+5", "-0", "-1", " 12 ", "1e5", "9223372036854775807", "9223372036854775808",
           "999999999999999999", "99999999999999999999", "", "  ", "1.0", "٣", "1_000"],
    "quantity": ["1", "0", "1000000", "1000001", "01", "2.0", "-3", ""],
    "price": ["149", "99.5", "0", "0.0", "1e3", "1,299", ".5", "5.", "1000000000", "1000000000.01", "00012.50",
              " 7 ", "nan", "inf", "0.1", "1.0000000000001", ""],
    "unit_price": ["0", "0.00", "-0", "12.5", "1000000000", "1000000001", "abc"],
    "date": ["1980-02-01", "2026-02-29", "2024-02-29", "1899-12-31", "2199-12-31", "2200-01-01", "1980-2-1",
             "01/02/1980", "1980-02-01T00:00", " 1980-02-01", ""],
    "datetime": ["2026-11-20", "2026-11-20T08:00:00Z", "2026-11-20T08:00:00+02:00", "2026-11-20 08:00",
                 "2026-02-29", "2026-11-20T24:00", "2026-11-20T08:00:00.5", "2026-11-20T08:00:00.123456-05:30",
                 "1899-12-31T23:00:00-02:00", "2199-12-31T23:30:00-01:00", "2026-11-20Z", "20261120",
                 "2026-11-20T08:00:60", "2026-11-20T08:00:00+14:00", "2026-11-20T08:00:00-00:00", "now",
                 "1900-01-01T00:30:00+01:00", "2026-13-01", ""],
    "email": ["a@b.com", "A.B@Example.COM", " a@b.com ", "Åse@Bücher.example", "a@b.123", "a..b@c.com",
              "x" * 65 + "@b.com", "x" * 64 + "@b.com", "a@-b.com", "a@b", "a@b.c", "a+tag@sub.example.no",
              "a@" + "b" * 250 + ".no", "bad", "", "o'neil@x.ie"],
    "str": ["x", " x ", "a\nb", "a\x00", "", "   ", "y" * 100, "y" * 101, "Åse", "tab\tinside"],
}


def _plain(values) -> list:
    out = []
    for v in list(values):
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            out.append(None)
        elif hasattr(v, "dtype") and str(getattr(v, "dtype", "")).startswith("datetime64"):
            out.append(pd.Timestamp(v).to_pydatetime())
        elif hasattr(v, "item"):
            out.append(v.item())
        else:
            out.append(v)
    return out


@pytest.mark.parametrize("kind,column", [("customers", "customer_id"), ("orders", "quantity"), ("products", "price"),
                                         ("orders", "unit_price"), ("customers", "birthday"),
                                         ("customers", "created_at"), ("customers", "email"),
                                         ("customers", "first_name"), ("customers", "locale"),
                                         ("customers", "time_zone"), ("customers", "consent_email")])
def test_vectorized_column_check_equals_the_per_row_check(tmp_path, kind, column):
    col = next(c for c in SPECS[kind] if c.name == column)
    values = TRICKY.get(col.kind, ["en", "nb", "fr", "", "EN", "Europe/Oslo", "europe/oslo", "yes", "No", "maybe"])
    values = values * 3  # repeated values share one check; every row still gets its message
    series = pd.Series(values, dtype="str", index=range(10, 10 + len(values)))
    path = tmp_path / "x.csv"
    fast_values, fast_problems = _validate_column(path, kind, col, "their", series)
    slow_values, slow_problems = _validate_cells(path, kind, col, "their", series)
    assert [str(p) for p in fast_problems] == [str(p) for p in slow_problems]
    bad = {p.line for p in slow_problems}
    keep = [i for i, label in enumerate(range(12, 12 + len(values))) if label not in bad]
    assert [_plain(fast_values)[i] for i in keep] == [_plain(slow_values)[i] for i in keep]
    assert slow_problems or col.kind in ("locale",)  # every list above has a bad value


def _customers_csv(path, n: int, bad_rows: dict[int, str] | None = None) -> None:
    lines = ["customer_id,email,first_name,locale,country,time_zone,birthday,created_at,consent_email"]
    for i in range(1, n + 1):
        lines.append(bad_rows.get(i) if bad_rows and i in bad_rows else
                     f"{i},c{i}@example.no,Name{i},nb,NO,Europe/Oslo,1980-02-01,2025-01-01T10:00:00Z,true")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_chunked_reading_keeps_row_numbers_and_writes_nothing_on_error(database_url, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK_ROWS", 7)
    engine = connect(database_url)
    path = tmp_path / "c.csv"
    _customers_csv(path, 40, {3: "3,bad,Name3,nb,NO,Europe/Oslo,,2025-01-01,true",
                              30: "30,c30@example.no,N,fr,NO,Europe/Oslo,,2025-01-01,true",
                              31: "31,C1@EXAMPLE.NO,N,nb,NO,Europe/Oslo,,2025-01-01,true"})
    with pytest.raises(DataImportError) as caught:
        import_file(engine, "customers", path)
    messages = [str(p) for p in caught.value.problems]
    assert messages[0].startswith(f"{path}:4: column 'email': 'bad' is not a valid e-mail address")
    assert messages[1] == f"{path}:31: column 'locale': 'fr' is not a supported locale; use one of en, nb, sv, da"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.customers)).scalar_one() == 0
    _customers_csv(path, 40, {31: "31,C1@EXAMPLE.NO,N,nb,NO,Europe/Oslo,,2025-01-01,true"})
    with pytest.raises(DataImportError) as caught:
        import_file(engine, "customers", path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:32: e-mail 'C1@example.no' (customer_id 31) is the same mailbox as 'c1@example.no' (customer_id 1, "
        "row 2): addresses differ only in case; keep one customer"]
    _customers_csv(path, 40)
    seen: list[tuple[str, int]] = []
    assert import_file(engine, "customers", path, progress=lambda stage, n: seen.append((stage, n))) == {"customers": 40}
    assert sum(n for stage, n in seen if stage == "validating") == 40
    assert sum(n for stage, n in seen if stage == "writing") == 40
    with engine.connect() as conn:
        rows = conn.execute(select(schema.customers).order_by(schema.customers.c.customer_id)).all()
    assert len(rows) == 40 and rows[39].email == "c40@example.no" and rows[0].birthday.isoformat() == "1980-02-01"
    assert rows[0].created_at.isoformat() == "2025-01-01T10:00:00"
    engine.dispose()


def test_import_command_draws_a_bar_per_stage_and_stays_quiet_without_a_terminal(project, tmp_path, capsys):
    from lojal.commands import import_data

    path = tmp_path / "c.csv"
    _customers_csv(path, 25)
    assert import_data(project, "customers", path, None, progress=True) == {"customers": 25}
    shown = capsys.readouterr().out
    assert "validating c.csv" in shown and "writing c.csv" in shown and "25/25" in shown
    assert import_data(project, "customers", path, None, progress=False) == {"customers": 25}
    assert capsys.readouterr().out == ""


def test_bulk_upsert_updates_known_customers_and_keeps_missing_values_missing(database_url, tmp_path):
    engine = connect(database_url)
    path = tmp_path / "c.csv"
    _customers_csv(path, 5, {2: "2,c2@example.no,,nb,NO,Europe/Oslo,,2025-01-01 08:30,false"})
    import_file(engine, "customers", path)
    _customers_csv(path, 6, {1: "1,c1@example.no,Renamed,sv,SE,Europe/Stockholm,1990-05-06,2025-01-01T10:00:00+01:00,no"})
    assert import_file(engine, "customers", path) == {"customers": 6}
    with engine.connect() as conn:
        rows = {r.customer_id: r for r in conn.execute(select(schema.customers))}
    assert len(rows) == 6
    assert (rows[1].first_name, rows[1].locale, rows[1].consent_email) == ("Renamed", "sv", False)
    assert rows[1].created_at.isoformat() == "2025-01-01T09:00:00" and rows[1].birthday.isoformat() == "1990-05-06"
    assert rows[3].consent_at is None and rows[3].consent_email is True
    engine.dispose()
