"""Events, CSV imports and operators' commands feeding the one suppression list."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from lojal.errors import DataImportError
from lojal.sendgrid.events import parse_batch, store_events
from lojal.store import connect
from lojal.store.db import init_schema
from lojal.suppressions import apply_events, import_csv, list_suppressions, remove

T0 = 1764000000


@pytest.fixture
def store(database_url):
    engine = connect(database_url)
    init_schema(engine)
    yield engine
    engine.dispose()


def event(n: int, kind: str, email: str, **extra) -> dict:
    return {"email": email, "timestamp": T0 + n, "event": kind, "sg_event_id": f"ev{n:04d}",
            "lojal_message_id": f"m{n:05d}", **extra}


def post(engine, *events) -> None:
    store_events(engine, parse_batch(json.dumps(list(events)).encode()))


def table(engine) -> dict[str, tuple]:
    return {r["email"]: (r["reason"], r["asm_group_id"], r["event_id"]) for r in list_suppressions(engine)}


def test_hard_bounces_complaints_and_unsubscribes_become_suppressions_once(store):
    post(store,
         event(1, "bounce", "Ola@Example.NO", type="bounce", reason="550 5.1.1 no such user"),
         event(2, "bounce", "soft@example.no", type="blocked", reason="421 try later"),
         event(3, "spamreport", "kari@example.no"),
         event(4, "unsubscribe", "per@example.no"),
         event(5, "group_unsubscribe", "liv@example.no", asm_group_id=42),
         event(6, "delivered", "anne@example.no"),
         event(7, "open", "anne@example.no"))
    first = apply_events(store)
    assert first.suppressed == 4 and first.events == 5
    assert table(store) == {"ola@example.no": ("bounce", None, "ev0001"),
                            "kari@example.no": ("spam_report", None, "ev0003"),
                            "per@example.no": ("unsubscribe", None, "ev0004"),
                            "liv@example.no": ("group_unsubscribe", 42, "ev0005")}
    again = apply_events(store)
    assert (again.suppressed, again.events) == (0, 0)
    post(store, event(1, "bounce", "ola@example.no", type="bounce"))  # SendGrid retries a batch: deduped
    assert apply_events(store).suppressed == 0


def test_a_group_resubscribe_lifts_only_its_group_unsubscribe(store):
    post(store, event(1, "group_unsubscribe", "liv@example.no", asm_group_id=42),
         event(2, "spamreport", "kari@example.no"),
         event(3, "group_resubscribe", "kari@example.no", asm_group_id=42),
         event(4, "group_resubscribe", "liv@example.no", asm_group_id=7))
    applied = apply_events(store)
    assert applied.lifted == 0 and set(table(store)) == {"liv@example.no", "kari@example.no"}
    post(store, event(5, "group_resubscribe", "liv@example.no", asm_group_id=42))
    assert apply_events(store).lifted == 1
    assert set(table(store)) == {"kari@example.no"}


def test_an_operators_removal_is_not_undone_by_old_events(store):
    post(store, event(1, "spamreport", "kari@example.no"))
    apply_events(store)
    assert remove(store, "KARI@example.no") is True
    apply_events(store)
    assert table(store) == {}


def test_the_next_night_skips_suppressed_customers_with_the_reason(store):
    from datetime import date

    import pandas as pd

    from lojal.audience import SUPPRESSED, exclusion_reasons
    from lojal.store import schema
    from lojal.store.shopdata import load_shop_data

    with store.begin() as conn:
        conn.execute(schema.customers.insert(), [
            {"customer_id": i, "email": email, "first_name": "", "locale": "nb", "country": "NO",
             "time_zone": "Europe/Oslo", "created_at": datetime(2024, 1, 1), "consent_email": True}
            for i, email in ((1, "Ola@example.no"), (2, "kari@example.no"))])
    post(store, event(1, "bounce", "ola@example.no", type="bounce"))
    apply_events(store)
    reasons = exclusion_reasons(load_shop_data(store, date(2026, 1, 1)))
    assert reasons.iloc[0] == SUPPRESSED and pd.isna(reasons.iloc[1])


def test_import_is_all_or_nothing_with_one_line_per_bad_row(store, tmp_path):
    bad = tmp_path / "old_provider.csv"
    bad.write_text("email,reason,created_at\n"
                   "a@example.no,unsubscribe,2025-01-02\n"
                   "not-an-address,bounce,2025-01-02\n"
                   "b@example.no,angry,2025-01-02\n"
                   "c@example.no,bounce,02/01/2025\n", encoding="utf-8")
    with pytest.raises(DataImportError) as caught:
        import_csv(store, bad)
    lines = [str(p) for p in caught.value.problems]
    assert [p.line for p in caught.value.problems] == [3, 4, 5]
    assert lines[0].startswith(f"{bad}:3:1: email 'not-an-address'")
    assert "reason 'angry'" in lines[1] and f"{bad}:5:3: created_at" in lines[2]
    assert table(store) == {}
    good = tmp_path / "good.csv"
    good.write_text("email,reason,created_at\nA@Example.NO,unsubscribe,2025-01-02\na@example.no,bounce,\n"
                    "b@example.no,,\n", encoding="utf-8")
    result = import_csv(store, good)
    assert (result.rows, result.added, result.already) == (3, 2, 1)
    rows = {r["email"]: r for r in list_suppressions(store)}
    assert rows["a@example.no"]["reason"] == "unsubscribe"
    assert rows["a@example.no"]["created_at"] == datetime(2025, 1, 2)
    assert rows["b@example.no"]["reason"] == "manual"
    assert import_csv(store, good).added == 0


def test_import_without_an_email_column_says_how_to_fix_it(store, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("address\nx@y.no\n")
    with pytest.raises(DataImportError, match="no 'email' column"):
        import_csv(store, path)
