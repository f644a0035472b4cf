"""What an operator relies on when nobody watches: the night a run is for, its name and tags, a
Failed state and a non-zero exit when messages failed (with customer ids everywhere they are
reported), and runs that fail before delivery still listed by `lojal runs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timezone

import anyio
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

import legacy_schema
from lojal.cli import app
from lojal.errors import ProjectError, StoreError
from lojal.paths import Paths
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.schedule import night_for, run_tags
from lojal.store import connect
from lojal.store.schema import customers
from lojal.store.write import insert_frame

RUN_DATE = date(2026, 11, 24)
runner = CliRunner()


def test_the_night_is_the_scheduled_time_in_the_shops_zone():
    oslo = "Europe/Oslo"
    assert night_for(datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc), oslo) == date(2026, 11, 24)  # 02:00
    # Scheduled 00:30 Oslo time: still the 23rd in UTC, already the 24th in the shop.
    assert night_for(datetime(2026, 11, 23, 23, 30, tzinfo=timezone.utc), oslo) == date(2026, 11, 24)
    assert night_for(datetime(2026, 11, 23, 23, 30), "UTC") == date(2026, 11, 23)  # naive = UTC
    # Summer time: 02:00 in Oslo is 00:00 UTC.
    assert night_for(datetime(2026, 6, 30, 0, 0, tzinfo=timezone.utc), oslo) == date(2026, 6, 30)
    assert run_tags("Nordlys Hjem AS", "staging") == ["lojal", "shop:nordlys-hjem-as", "env:staging"]


@pytest.fixture(scope="module")
def shop():
    return generate_shop(500, seed=9, until=RUN_DATE)


@pytest.fixture
def filled(project, shop):
    write_sample_shop(connect(Paths.resolve(project).database_url), shop, replace=False)
    return project


def _flow_run(flow_run_id):
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(flow_run_id)

    return anyio.run(read)


def _children(flow_run_id):
    """The night's campaign subflow runs and their send-batch task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    async def read():
        async with get_client() as client:
            subflows = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[s.id for s in subflows])))
            return subflows, [t for t in tasks if "-batch-" in t.name]

    return anyio.run(read)


def _runs(project) -> list[dict]:
    result = runner.invoke(app, ["runs", "--json", "--project", str(project)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_without_a_date_is_named_for_its_night_and_tagged(filled):
    from lojal.flows.nightly import nightly
    from lojal.clock import shop_today

    state = nightly(project_dir=str(filled), return_state=True)
    assert state.is_completed()
    run = _flow_run(state.state_details.flow_run_id)
    assert run.name == f"nightly-{shop_today('Europe/Oslo')}" != "nightly-None"
    assert {"lojal", "shop:nordlys-hjem", "env:production"} <= set(run.tags)
    assert _runs(filled)[0]["run_date"] == shop_today("Europe/Oslo").isoformat()
    subflows, batches = _children(run.id)
    assert subflows and all({"lojal", "delivery", f"campaign:{s.parameters['campaign_id']}"} <= set(s.tags)
                            for s in subflows)
    assert batches and all(not t.tags for t in batches)  # tagged task runs cost a concurrency check each

    # The morning report: that night completed; a night without any run fails, for automations.
    from lojal.flows.report import report

    fine = report(run_date=shop_today("Europe/Oslo"), project_dir=str(filled), return_state=True)
    assert fine.is_completed() and fine.result()["status"] == "completed"
    missing = report(run_date=date(2026, 1, 1), project_dir=str(filled), return_state=True)
    assert missing.is_failed() and missing.message.startswith("no nightly run for 2026-01-01")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_night_with_failed_messages_ends_failed_and_names_the_customers(filled):
    from lojal.flows.nightly import nightly

    # A line break in a first name makes every subject it appears in a header injection: those
    # recipients fail, the others are delivered.
    engine = connect(Paths.resolve(filled).database_url)
    with engine.begin() as conn:
        conn.execute(update(customers).where(customers.c.customer_id % 5 == 0)
                     .values(first_name="Eve\nBcc: victim@example.com"))
    state = nightly(run_date=RUN_DATE, project_dir=str(filled), return_state=True)
    assert state.is_failed() and state.message.startswith("partial: ")
    result = state.result(raise_on_failure=False)
    failed = sum(c["failed"] for c in result["campaigns"])
    assert failed > 0 and sum(c["delivered"] for c in result["campaigns"]) > 0
    errors = [e for c in result["campaigns"] for e in c["errors"]]
    assert errors and all(e.startswith("customer ") and "HeaderInjectionError" in e for e in errors)
    assert all(int(e.split()[1].rstrip(":")) % 5 == 0 for e in errors)

    listed = _runs(filled)[0]
    assert (listed["status"], listed["failed"]) == ("partial", failed)
    shown = runner.invoke(app, ["runs", "show", str(listed["id"]), "--project", str(filled)])
    assert shown.exit_code == 0 and "partial" in shown.output
    assert errors[0] in shown.output
    assert errors[0].split(":")[0] in (Paths.resolve(filled).state / "runs" / "2026-11-24" / "report.html").read_text()
    from lojal.flows.report import report

    morning = report(run_date=RUN_DATE, project_dir=str(filled), return_state=True)
    assert morning.is_failed() and morning.message.startswith(f"the night of {RUN_DATE} is partial: {failed} message")

    # The CLI: one clean line per error, exit 1, no traceback (the failed rows are retried and fail again).
    cli = subprocess.run([sys.executable, "-c", "from lojal.cli import main; main()", "run", "--date", "2026-11-24",
                          "--project", str(filled)], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 1, cli.stderr
    lines = [line for line in cli.stderr.splitlines() if line.startswith("failed: customer ")]
    assert lines and all("HeaderInjectionError" in line for line in lines)
    assert "Traceback" not in cli.stderr + cli.stdout
    engine.dispose()


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_stopped_by_a_broken_template_is_listed_with_its_error(filled):
    from lojal.flows.nightly import nightly

    template = filled / "templates" / "win_back" / "email.mjml"
    template.write_text(template.read_text().replace("{{ t.heading }}", "{{ t.heading "))
    with pytest.raises(ProjectError):
        nightly(run_date=RUN_DATE, project_dir=str(filled))
    run = _runs(filled)[0]
    assert (run["run_date"], run["status"]) == ("2026-11-24", "failed")
    assert run["error"].startswith("templates/win_back/email.mjml:")
    shown = runner.invoke(app, ["runs", "show", str(run["id"]), "--project", str(filled)])
    assert "templates/win_back/email.mjml:" in shown.output


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_on_a_store_awaiting_upgrade_is_listed_and_says_what_to_run(project, shop):
    from lojal.flows.nightly import nightly

    engine = connect(Paths.resolve(project).database_url)
    legacy_schema.metadata.create_all(engine)
    with engine.begin() as conn:
        insert_frame(conn, legacy_schema.customers, shop.customers.head(20))
    with pytest.raises(StoreError, match=r"created before Lojal had migrations.*run `lojal db upgrade`"):
        nightly(run_date=RUN_DATE, project_dir=str(project))
    run = _runs(project)[0]  # `lojal runs` reads the old store; its runs table gets `error` with the upgrade
    assert (run["run_date"], run["status"]) == ("2026-11-24", "failed")
    engine.dispose()


def test_a_prefect_server_that_does_not_start_is_one_clear_line(project, tmp_path):
    """The temporary server is given no time at all: two tries, then one line saying what to do."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="0",
               COLUMNS="80")
    cli = subprocess.run([sys.executable, "-c", "from lojal.cli import main; main()", "run", "--date", "2026-11-24",
                          "--project", str(project)], capture_output=True, text=True, timeout=120, env=env)
    assert cli.returncode == 1
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: Prefect's temporary server did not answer within 0 s, "
                                                   "tried 2 times"), cli.stderr
    assert "PREFECT_API_URL" in lines[0] and "Traceback" not in cli.stderr + cli.stdout
