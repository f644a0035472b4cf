"""`lojal report`: numbers from a store with sends, held-out customers, events and orders, and the
page as headless Chromium shows it."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from typer.testing import CliRunner

from headless import chromium, needs_chromium, screenshot
from lojal.cli import app
from lojal.paths import Paths
from lojal.store import connect, schema
from lojal.store.db import init_schema
from lojal.store.write import bulk_insert
from lojal.tracking.report import gather, render_html

NIGHT = date(2026, 11, 20)
T = datetime(2026, 11, 20, 8, 0)


def fill(engine) -> None:
    """40 customers: 1-30 mailed (win_back), 31-40 held out. Mailed 1-6 and held-out 31 buy."""
    with engine.begin() as conn:
        conn.execute(schema.customers.insert(), [
            {"customer_id": i, "email": f"c{i}@example.no", "first_name": "", "locale": "nb", "country": "NO",
             "time_zone": "Europe/Oslo", "created_at": datetime(2024, 1, 1), "consent_email": True} for i in range(1, 41)])
        conn.execute(schema.products.insert(), [{"sku": "P1", "title": "Pute", "category": "tekstil",
                                                 "price": 199.9, "currency": "NOK"}])
        conn.execute(schema.send_ledger.insert(), [
            {"campaign_id": "win_back", "customer_id": i, "occasion_key": "2026-11", "run_date": NIGHT,
             "message_id": f"m{i}", "state": "sent" if i <= 30 else "held_out", "planned_at": T, "attempts": 1,
             "accepted_at": T if i <= 30 else None} for i in range(1, 41)])
        events = []
        for i in range(1, 31):
            events.append(("delivered", i, T + timedelta(minutes=1), False))
        for i in range(1, 11):
            events.append(("opened", i, T + timedelta(hours=1), i > 7))  # 8-10: machine opens
            events.append(("opened", i, T + timedelta(hours=2), i > 7))  # a second open counts once
        for i in range(1, 6):
            events.append(("clicked", i, T + timedelta(hours=3), False))
        events += [("bounced", 29, T, False), ("complained", 30, T, False), ("unsubscribed", 28, T, False)]
        conn.execute(schema.delivery_events.insert(), [
            {"sg_event_id": f"e{n}", "event": kind, "message_id": f"m{i}", "email": f"c{i}@example.no",
             "occurred_at": at, "received_at": at, "machine_open": machine, "payload": "{}"}
            for n, (kind, i, at, machine) in enumerate(events)])
        buyers = [(1, 1), (2, 2), (3, 1), (4, 1), (5, 3), (6, 1), (31, 1)]  # 6 opened only, never clicked
        conn.execute(schema.orders.insert(), [
            {"order_id": 100 + c, "customer_id": c, "placed_at": T + timedelta(days=1), "currency": "NOK"}
            for c, _ in buyers])
        conn.execute(schema.order_lines.insert(), [
            {"order_id": 100 + c, "line_no": 1, "sku": "P1", "quantity": q, "unit_price": 199.9} for c, q in buyers])


@pytest.fixture
def store(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'store.db'}")
    init_schema(engine)
    fill(engine)
    yield engine
    engine.dispose()


def test_the_numbers_of_one_night(store):
    report = gather(store, NIGHT, NIGHT, "NOK", window_days=5, min_sample=10)
    (campaign,) = report.campaigns
    counts = campaign.days[NIGHT].counts
    assert counts == {"sent": 30, "delivered": 30, "opened": 7, "clicked": 5, "bounced": 1, "unsubscribed": 1,
                      "complained": 1}
    assert campaign.conversions == 5  # clickers 1-5; customer 6 only opened
    assert campaign.revenue == Decimal("199.90") * 8  # quantities 1+2+1+1+3
    lift = campaign.lift
    assert (lift.mailed.recipients, lift.held_out.recipients) == (30, 10)
    assert (lift.mailed.conversions, lift.held_out.conversions) == (6, 1)
    assert lift.mailed.revenue == Decimal("199.90") * 9
    assert lift.revenue_per_recipient.estimate == (Decimal("199.90") * 9 / 30 - Decimal("19.99"))
    with_opens = gather(store, NIGHT, NIGHT, "NOK", use_opens=True).campaigns[0]
    assert with_opens.conversions == 6



def test_revenue_is_exact_each_price_rounded_to_the_cent_half_to_even_and_orders_by_their_night(store):
    """Prices stored to four decimals count to the cent as written (2.675 -> 2.68 and 1.005 -> 1.00,
    half to even, not as binary floats round them), times the quantity, summed exactly. An order at
    the very start of the night and one 5 days later (the window's end, excluded) sit on the edges."""
    night = datetime.combine(NIGHT, datetime.min.time())
    with store.begin() as conn:
        conn.execute(schema.orders.insert(), [
            {"order_id": 500, "customer_id": 7, "placed_at": night, "currency": "NOK"},
            {"order_id": 501, "customer_id": 7, "placed_at": night + timedelta(days=5), "currency": "NOK"},
            {"order_id": 502, "customer_id": 7, "placed_at": night - timedelta(days=90), "currency": "NOK"},
            {"order_id": 503, "customer_id": 7, "placed_at": night - timedelta(days=91), "currency": "NOK"}])
        conn.execute(schema.order_lines.insert(), [
            {"order_id": 500, "line_no": 1, "sku": "P1", "quantity": 3, "unit_price": 2.675},
            {"order_id": 500, "line_no": 2, "sku": "P1", "quantity": 1, "unit_price": 1.005},
            {"order_id": 500, "line_no": 3, "sku": "P1", "quantity": 2, "unit_price": 0.125},
            {"order_id": 501, "line_no": 1, "sku": "P1", "quantity": 1, "unit_price": 1000},
            {"order_id": 502, "line_no": 1, "sku": "P1", "quantity": 1, "unit_price": 12.3456},
            {"order_id": 503, "line_no": 1, "sku": "P1", "quantity": 1, "unit_price": 77}])
    campaign = gather(store, NIGHT, NIGHT, "NOK", window_days=5, min_sample=10).campaigns[0]
    # mailed: customers 1-6 as before (199.90 x 9), and customer 7: 3 x 2.68 + 1.00 + 2 x 0.12 = 9.28
    assert campaign.lift.mailed.revenue == Decimal("199.90") * 9 + Decimal("9.28")
    assert campaign.lift.mailed.conversions == 7
    assert str(campaign.lift.mailed.revenue) == "1808.38"


def test_a_campaign_with_arms_is_compared_arm_by_arm_in_the_report(store):
    """The arm is the ledger row's `variant` (docs/planning.md): customers 1-15 got arm a, 16-30 arm b."""
    with store.begin() as conn:
        for first, last, arm in ((1, 15, "a"), (16, 30, "b")):
            conn.execute(schema.send_ledger.update().where(schema.send_ledger.c.customer_id.between(first, last))
                         .values(variant=arm))
    report = gather(store, NIGHT, NIGHT, "NOK", window_days=5, min_sample=10)
    arms = report.campaigns[0].arms
    assert arms is not None
    assert [(a.group, a.recipients, a.conversions) for a in arms.arms] == [("a", 15, 6), ("b", 15, 0)]
    assert "A/B arms" in render_html(report)

@needs_chromium
def test_the_report_page_in_headless_chromium(project, tmp_path):
    engine = connect(Paths.resolve(project).database_url)
    init_schema(engine)
    fill(engine)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--from", "2026-11-20", "--to", "2026-11-20", "--out", str(out),
                                      "--project", str(project)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert not any(s in page for s in ("<script", "src=", "<link", "@import", "url("))  # self-contained
    dom = chromium(tmp_path, "--dump-dom", out.as_uri()).stdout
    assert 'data-campaign="win_back"' in dom
    assert 'data-step="sent" data-value="30"' in dom and 'data-step="opened" data-value="7"' in dom
    assert 'class="lift"' in dom and "1\u202f599.20 NOK" in dom  # 8 x 199.90 attributed
    shot = tmp_path / "shot.png"
    screenshot(tmp_path, out.as_uri(), shot, 1000, 900)
    assert shot.stat().st_size > 5000


def test_customer_text_is_escaped_in_the_page(store):
    with store.begin() as conn:
        conn.execute(schema.send_ledger.insert().values(
            campaign_id="<b>x</b>", customer_id=1, occasion_key="o", run_date=NIGHT, message_id="mx", state="sent",
            planned_at=T, attempts=1))
    page = render_html(gather(store, NIGHT, NIGHT))
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_the_night_report_comes_from_the_store_so_a_rerun_does_not_empty_it(project, store, tmp_path):
    from lojal.config import load_config
    from lojal.tracking.report import write_night_report

    config = load_config(Paths.resolve(project))
    page, markdown, _ = write_night_report(store, tmp_path / "state", NIGHT, config)
    again, markdown_again, _ = write_night_report(store, tmp_path / "state", NIGHT, config)  # the re-run
    assert page == again and markdown == markdown_again
    assert "| win_back | 30 | 30 | 7 | 5 | 1 | 1 | 1 | 5 | 1\u202f599.20 NOK |" in markdown
    assert 'data-step="sent" data-value="30"' in page.read_text()


@pytest.mark.parametrize("database_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_month_with_more_sent_messages_than_a_statement_takes_parameters(database_url):
    """70,000 sent messages: past PostgreSQL's 65,535 parameters per statement, which the events
    query passed with a list of their ids, so the tracking report of a big shop's night failed."""
    engine = connect(database_url)
    init_schema(engine)
    fill(engine)
    count = 70_000
    ids = [f"bulk{i}" for i in range(count)]
    with engine.begin() as conn:
        bulk_insert(conn, schema.send_ledger, pd.DataFrame({
            "campaign_id": "vip_care", "customer_id": [1 + i % 40 for i in range(count)],
            "occasion_key": [f"o{i}" for i in range(count)], "run_date": NIGHT, "message_id": ids, "state": "sent",
            "planned_at": T, "attempts": 1, "accepted_at": T}))
        bulk_insert(conn, schema.delivery_events, pd.DataFrame({
            "sg_event_id": [f"bulk-e{i}" for i in range(count)], "event": "delivered", "message_id": ids,
            "email": "c1@example.no", "occurred_at": T, "received_at": T, "machine_open": False, "payload": "{}"}))
    try:
        report = gather(engine, NIGHT, NIGHT, "NOK", window_days=5, min_sample=10)
    finally:
        engine.dispose()
    by_id = {c.campaign_id: c for c in report.campaigns}
    assert by_id["vip_care"].days[NIGHT].counts["sent"] == count
    assert by_id["vip_care"].days[NIGHT].counts["delivered"] == count
    assert by_id["win_back"].days[NIGHT].counts["delivered"] == 30  # the small night's numbers unchanged
