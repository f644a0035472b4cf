"""A night with malformed customers completes for everyone else: each bad recipient's message
fails (or is excluded) with its reason in the ledger, `lojal runs` and the run report."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from lojal import pipeline
from lojal.audience import NEEDS_SMTPUTF8
from lojal.cli import app
from lojal.paths import Paths
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect, schema
from lojal.store.schema import send_ledger

RUN_DATE = date(2026, 11, 24)


def _tonights_recipients(project: Path) -> list[tuple[str, int]]:
    """(campaign, customer) of tonight's first recipients, decided without writing anything."""
    loaded = pipeline.load_project(Paths.resolve(project))
    night = pipeline.prepare_night(loaded, RUN_DATE)
    log = pipeline.decide_night(night)
    night.engine.dispose()
    chosen = log[log["decision"] == "selected"]
    return [(c.id, int(cid)) for c in loaded.config.campaigns.enabled
            for cid in chosen.loc[chosen["campaign"] == c.id, "customer_id"][:2]]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_malformed_customers_fail_alone_and_are_explained(project):
    engine = connect(Paths.resolve(project).database_url)
    write_sample_shop(engine, generate_shop(600, seed=5, until=RUN_DATE), replace=False)
    (camp_a, smtputf8), (camp_b, injector), (camp_c, no_locale), *_ = _tonights_recipients(project)
    with engine.begin() as conn:
        customers = schema.customers
        conn.execute(update(customers).where(customers.c.customer_id == smtputf8).values(email="pelé@example.com"))
        conn.execute(update(customers).where(customers.c.customer_id == injector)
                     .values(first_name="Eve\r\nBcc: victim@example.com"))
        conn.execute(update(customers).where(customers.c.customer_id == no_locale).values(locale="fr"))

    from lojal.flows.nightly import nightly

    state = nightly(run_date=RUN_DATE, project_dir=str(project), return_state=True)
    assert state.is_failed() and state.message.startswith("partial: 2 message(s) failed"), state
    result = state.result(raise_on_failure=False)  # a partial night carries its result
    with engine.connect() as conn:
        rows = pd.read_sql(select(send_ledger), conn).set_index("customer_id")
    engine.dispose()

    assert smtputf8 not in rows.index  # excluded at planning, with the reason counted
    summary = {s["campaign_id"]: s for s in result["campaigns"]}
    assert summary[camp_a]["excluded"][NEEDS_SMTPUTF8] == 1
    failed = rows[rows["state"] == "failed"]
    assert sorted(failed.index) == sorted([injector, no_locale])
    assert failed.loc[injector, "error"].startswith(f"customer {injector}: HeaderInjectionError: subject of '{camp_b}'")
    assert "contains a line break or control character" in failed.loc[injector, "error"]
    assert failed.loc[no_locale, "error"].startswith(
        f"customer {no_locale}: RenderError: no compiled template")
    others = rows.drop(index=[injector, no_locale])["state"]
    assert (others[others != "held_out"] == "sent").all() and len(rows) > 20  # held_out: holdout groups, never sent
    assert sum(s["failed"] for s in result["campaigns"]) == 2
    assert sum(s["delivered"] for s in result["campaigns"]) == int((rows["state"] != "held_out").sum()) - 2
    assert sum(s["held_out"] for s in result["campaigns"]) == int((rows["state"] == "held_out").sum()) > 0

    listed = CliRunner().invoke(app, ["runs", "--project", str(project)])
    assert listed.exit_code == 0, listed.output
    assert f"{camp_b}: customer {injector}: HeaderInjectionError" in listed.output
    runs = json.loads(CliRunner().invoke(app, ["runs", "--json", "--project", str(project)]).stdout)
    assert runs[0]["status"] == "partial" and runs[0]["failed"] == 2
    assert any(e.startswith(f"{camp_c}: customer {no_locale}: RenderError") for e in runs[0]["errors"])
    report = Path(result["report"]).read_text(encoding="utf-8")
    assert f"customer {injector}: HeaderInjectionError" in report and "Why messages failed" in report


def test_a_message_the_backend_cannot_take_fails_alone(tmp_path):
    from lojal import ledger
    from lojal.config import Delivery, Tracking
    from lojal.delivery import OutboxBackend, OutgoingMessage
    from lojal.store import init_schema

    engine = connect(f"sqlite:///{tmp_path / 'store.db'}")
    init_schema(engine)
    rows = ledger.plan(engine, "news", RUN_DATE, pd.DataFrame({"customer_id": [1, 2, 3], "occasion_key": "once"}))
    messages = [OutgoingMessage(message_id=m, campaign_id="news", customer_id=c, to_email=f"c{c}@example.com",
                                to_name="X", from_email="shop@example.com", from_name="Shop", subject="Hi",
                                html="<p>\ud800</p>" if c == 2 else "<p>hi</p>", text="hi")
                for c, m in zip(rows["customer_id"], rows["message_id"])]  # a lone surrogate cannot be written
    settings = Delivery(max_attempts=2, retry_pause_seconds=0)
    outcome = pipeline.deliver(engine, OutboxBackend(tmp_path / "outbox", Tracking()), messages, RUN_DATE, settings)
    # the window is handed over again message by message: the first was delivered before the failure
    assert outcome.delivered + outcome.duplicates == 2 and list(outcome.failed) == [rows["message_id"][1]]
    assert sorted(p.stem for p in (tmp_path / "outbox" / "news").glob("*.eml")) == sorted(
        [rows["message_id"][0], rows["message_id"][2]])
    assert outcome.failed[rows["message_id"][1]].startswith("abandoned: gave up after 2 attempts: customer 2: unexpected UnicodeEncodeError")
    with engine.connect() as conn:
        states = dict(conn.execute(select(send_ledger.c.customer_id, send_ledger.c.state)).all())
    assert states == {1: "sent", 2: "abandoned", 3: "sent"}  # tried max_attempts times, then given up
