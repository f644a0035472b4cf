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
from lojal.planning import assign_campaigns
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect, schema
from lojal.store.schema import send_ledger

RUN_DATE = date(2026, 11, 24)
pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def _tonights_recipients(project: Path) -> list[tuple[str, int]]:
    """(campaign, customer) of tonight's first recipients, decided without writing anything."""
    loaded = pipeline.load_project(Paths.resolve(project))
    night = pipeline.prepare_night(loaded, RUN_DATE)
    audiences = assign_campaigns(loaded.config.campaigns, night.data, night.features, night.membership,
                                 pd.DataFrame(columns=["campaign_id", "customer_id", "occasion_key", "run_date"]))
    night.engine.dispose()
    return [(a.campaign.id, int(c)) for a in audiences for c in a.recipients["customer_id"][:2]]


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

    from flows.nightly import nightly

    result = nightly(run_date=RUN_DATE, project_dir=str(project))
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
    assert (rows.drop(index=[injector, no_locale])["state"] == "sent").all() and len(rows) > 20
    assert sum(s["failed"] for s in result["campaigns"]) == 2
    assert sum(s["delivered"] for s in result["campaigns"]) == len(rows) - 2

    listed = CliRunner().invoke(app, ["runs", "--project", str(project)])
    assert listed.exit_code == 0, listed.output
    assert f"{camp_b}: customer {injector}: HeaderInjectionError" in listed.output
    runs = json.loads(CliRunner().invoke(app, ["runs", "--json", "--project", str(project)]).stdout)
    assert runs[0]["status"] == "completed" and runs[0]["failed"] == 2
    assert any(e.startswith(f"{camp_c}: customer {no_locale}: RenderError") for e in runs[0]["errors"])
    report = Path(result["report"]).read_text(encoding="utf-8")
    assert f"customer {injector}: HeaderInjectionError" in report and "Why messages failed" in report
