"""The nightly flow end to end under Prefect's test harness: a full run, a repeated run that
sends nothing, a run killed half-way that a re-run completes, and the same on PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from lojal.cli import app
from lojal.errors import DeliveryError
from lojal.paths import Paths
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect
from lojal.store.schema import send_ledger

RUN_DATE = date(2026, 11, 24)
pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def sample_shop():
    return generate_shop(1500, seed=11, until=RUN_DATE)


@pytest.fixture
def filled_project(project, sample_shop):
    write_sample_shop(connect(Paths.resolve(project).database_url), sample_shop, replace=False)
    return project


def run(project, **kwargs) -> dict:
    from lojal.flows.nightly import nightly

    return nightly(run_date=RUN_DATE, project_dir=str(project), **kwargs)


def ledger_rows(project) -> pd.DataFrame:
    engine = connect(Paths.resolve(project).database_url)
    with engine.connect() as conn:
        frame = pd.read_sql(select(send_ledger), conn)
    engine.dispose()
    return frame


def delivery_log(project) -> list[str]:
    log = Paths.resolve(project).outbox_dir(RUN_DATE) / "deliveries.jsonl"
    return [json.loads(line)["message_id"] for line in log.read_text().splitlines()]


def eml_ids(project) -> set[str]:
    return {p.stem for p in Paths.resolve(project).outbox_dir(RUN_DATE).glob("*/*.eml")}


def _assert_funnel_chart_accounts_for_every_match(result: dict) -> None:
    page = Path(result["report"]).read_text()
    svg = page[page.index("<svg"):page.index("</svg>") + 6]
    counts = [int(n) for n in re.findall(r'data-count="(\d+)"', svg)]
    assert sum(counts) == sum(c["matched"] for c in result["campaigns"])


def test_full_run_then_repeat_sends_nothing(filled_project, sample_shop):
    first = run(filled_project)
    delivered = {c["campaign_id"]: c["delivered"] for c in first["campaigns"]}
    assert set(delivered) == {"tier_upgrade", "welcome", "post_purchase", "replenishment", "survey", "birthday",
                              "vip_care", "win_back", "last_chance"}
    assert delivered["welcome"] > 0 and delivered["last_chance"] > 0  # the lifecycle plays work tonight
    assert sum(n > 0 for n in delivered.values()) >= 6, delivered  # tier upgrades are rare in a small shop
    assert sum(c["failed"] for c in first["campaigns"]) == 0

    rows = ledger_rows(filled_project)
    held = rows[rows["state"] == "held_out"]  # holdout groups: recorded, never sent
    assert len(held) == sum(c["held_out"] for c in first["campaigns"]) > 0
    assert not set(held["message_id"]) & eml_ids(filled_project)
    rows = rows[rows["state"] != "held_out"]
    assert (rows["state"] == "sent").all() and len(rows) == sum(delivered.values())
    assert eml_ids(filled_project) == set(rows["message_id"])
    assert not rows.duplicated(["customer_id", "run_date"]).any()  # one e-mail per customer per night

    index = (Paths.resolve(filled_project).outbox_dir(RUN_DATE) / "index.html").read_text()
    assert index.count('.html">') == len(rows)

    _assert_consent_and_suppression_respected(rows, sample_shop)
    _assert_artifacts_published()
    _assert_funnel_chart_accounts_for_every_match(first)

    second = run(filled_project)
    assert sum(c["delivered"] for c in second["campaigns"]) == 0
    assert sum(c["excluded"].get("already sent tonight (a re-run)", 0) for c in second["campaigns"]) == len(rows)
    assert len(delivery_log(filled_project)) == len(rows)


def _assert_consent_and_suppression_respected(rows, sample_shop):
    customers = sample_shop.customers.set_index("customer_id").loc[rows["customer_id"]]
    assert customers["consent_email"].all()
    assert not customers["email"].str.lower().isin(sample_shop.suppressions["email"]).any()


def test_killed_half_way_then_rerun_completes_without_duplicates(filled_project):
    sender = filled_project / "config" / "sender.yaml"
    settings = yaml.safe_load(sender.read_text())
    settings["delivery"]["batch_size"] = 40
    sender.write_text(yaml.safe_dump(settings))

    with pytest.raises(DeliveryError, match="after 70 messages"):
        run(filled_project, fail_after=70)
    crashed = ledger_rows(filled_project)
    crashed = crashed[crashed["state"] != "held_out"]  # holdout groups: recorded, never sent
    planned_total = len(crashed)
    # 70 delivered; the interrupted window (one batch of 40 here) was left `sending`, not guessed.
    recorded = int((crashed["state"] == "sent").sum())
    in_flight = int((crashed["state"] == "sending").sum())
    assert 0 < recorded < 70 and 70 - recorded <= in_flight <= 40
    assert set(crashed["state"]) == {"sent", "sending", "planned"}
    assert len(eml_ids(filled_project)) == 70

    resumed = run(filled_project)
    # Reconciled from the outbox's own record before anything was resent: no message handed over twice.
    assert resumed["reconciled"] == {"sending -> sent": 70 - recorded, "sending -> failed": in_flight - (70 - recorded)}
    listed = CliRunner().invoke(app, ["runs", "--json", "--project", str(filled_project)])
    runs = json.loads(listed.stdout)
    assert [(r["run_date"], r["status"]) for r in runs] == [("2026-11-24", "completed"), ("2026-11-24", "failed")]
    assert runs[0]["delivered"] == sum(c["delivered"] for c in resumed["campaigns"])
    assert 0 < runs[1]["delivered"] <= recorded  # the crashed run: what its finished campaigns delivered
    rows = ledger_rows(filled_project)
    rows = rows[rows["state"] != "held_out"]
    assert len(rows) == planned_total and (rows["state"] == "sent").all()
    log = delivery_log(filled_project)
    assert len(log) == planned_total == len(set(log)), "every planned message delivered exactly once"
    assert eml_ids(filled_project) == set(rows["message_id"])
    assert sum(c["duplicates"] for c in resumed["campaigns"]) == 0


@pytest.mark.postgres
def test_nightly_run_on_postgresql_records_each_campaign_while_dask_delivers_the_one_before(
        project, postgres_url, monkeypatch):
    from lojal.flows.nightly import nightly

    monkeypatch.setenv("LOJAL_DATABASE_URL", postgres_url)
    write_sample_shop(connect(postgres_url), generate_shop(800, seed=5, until=RUN_DATE), replace=False)
    state = nightly(run_date=RUN_DATE, project_dir=str(project), dask_local=2, return_state=True)
    first = state.result()
    delivered = sum(c["delivered"] for c in first["campaigns"])
    assert delivered > 50
    # campaign n+1 is recorded while campaign n is delivered: after campaign n-1's subflow ended, before
    # campaign n's did (on SQLite, or with batches in this process, every campaign is recorded first)
    subflows, records = _campaign_runs(state.state_details.flow_run_id)
    order = [s.parameters["campaign_id"] for s in subflows]
    assert order == [c["campaign_id"] for c in first["campaigns"]] and len(order) > 2
    started = {t.name.removeprefix("record_campaign-"): t.start_time for t in records}
    assert started.keys() == set(order)
    for number, recorded_next in enumerate(order[1:], 1):
        assert started[recorded_next] < subflows[number - 1].end_time, recorded_next
        assert number == 1 or started[recorded_next] > subflows[number - 2].end_time, recorded_next
    assert sum(c["delivered"] for c in run(project)["campaigns"]) == 0
    assert int((ledger_rows(project)["state"] != "held_out").sum()) == delivered


def _campaign_runs(flow_run_id) -> tuple[list, list]:
    """The night's campaign subflow runs in the order they started, and its record_campaign task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return (sorted(subflows, key=lambda s: s.start_time),
            [t for t in tasks if t.name.startswith("record_campaign-")])


def _assert_artifacts_published():
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read(key: str):
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))

    newest = lambda artifacts: max(artifacts, key=lambda a: a.created)  # other tests' runs share the server
    summary = anyio.run(read, "nightly-summary")
    assert summary and "Nightly retention run — 2026-11-24" in newest(summary).data
    funnel = anyio.run(read, "campaign-win-back")
    assert funnel and "| selected tonight |" in newest(funnel).data


def test_broken_marketer_files_stop_the_run_before_anything_is_sent(filled_project):
    from lojal.errors import ProjectError

    template = filled_project / "templates" / "win_back" / "email.mjml"
    template.write_text(template.read_text().replace("{{ t.heading }}", "{{ t.heading "))
    segment = filled_project / "segments" / "champions.yaml"
    segment.write_text(segment.read_text().replace("where:", "wher:"))

    with pytest.raises(ProjectError) as caught:
        run(filled_project)
    listed = [str(p) for p in caught.value.problems]
    assert any(p.startswith("templates/win_back/email.mjml:") for p in listed), listed
    assert any(p.startswith("segments/champions.yaml:") and "wher" in p for p in listed), listed
    assert ledger_rows(filled_project).empty
    assert not Paths.resolve(filled_project).outbox_dir(RUN_DATE).exists()
