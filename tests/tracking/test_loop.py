"""The loop closed on loopback: a night sends through the local SendGrid, which posts signed events
to the webhook app (`app_for_project`, with its /unsubscribe endpoint on the store's generated
secret); one recipient clicks the one-click unsubscribe of the message they got; the next night
applies the events before planning and skips every bounced, complaining and unsubscribed customer
with the reason; `lojal report` shows the numbers."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from delivery.big_night import API_KEY, Served, free_port, one_campaign_project, synthetic_shop
from lojal.cli import app as cli
from lojal.sample.store import write_sample_shop
from lojal.sendgrid.local import LocalOptions, LocalSendGrid
from lojal.store import connect, schema
from lojal.suppressions import Applied, list_suppressions
from lojal.tracking.night import suppressions_line

D1 = date(2026, 11, 24)
D2 = D1 + timedelta(days=1)
N = 150
RATES = {"delivered": 1.0, "deferred": 0.0, "dropped": 0.0, "bounce": 0.08, "open": 0.5, "machine_open": 0.2,
         "click": 0.2, "spamreport": 0.04, "unsubscribe": 0.05, "group_unsubscribe": 0.0}
pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def _project(tmp_path, port: int):
    root = one_campaign_project(tmp_path / "project")
    campaigns = yaml.safe_load((root / "config" / "campaigns.yaml").read_text())
    campaigns["campaigns"][0]["occasion"] = "run_date"  # would mail everyone again the next night
    (root / "config" / "campaigns.yaml").write_text(yaml.safe_dump(campaigns))
    brand = yaml.safe_load((root / "config" / "brand.yaml").read_text())
    brand.pop("unsubscribe_url")  # Lojal's own page: the webhook app's /unsubscribe/{token}
    (root / "config" / "brand.yaml").write_text(yaml.safe_dump(brand, allow_unicode=True))
    tracking = yaml.safe_load((root / "config" / "tracking.yaml").read_text())
    tracking["public_url"] = f"http://127.0.0.1:{port}"
    (root / "config" / "tracking.yaml").write_text(yaml.safe_dump(tracking))
    return root


def _night(project, night: date) -> dict:
    from lojal.flows.nightly import nightly

    state = nightly(run_date=night, project_dir=str(project), delivery="sendgrid", return_state=True)
    result = state.result(raise_on_failure=False)
    assert not isinstance(result, BaseException), result
    return result


def _mailed(engine, night: date) -> dict[int, str]:
    ledger = schema.send_ledger
    with engine.connect() as conn:
        rows = conn.execute(select(ledger.c.customer_id, ledger.c.state).where(ledger.c.run_date == night)).all()
    return {int(c): s for c, s in rows}


def test_events_and_one_click_unsubscribes_are_skipped_the_next_night_and_reported(tmp_path, monkeypatch):
    from lojal.sendgrid.app import PUBLIC_KEY_ENV, app_for_project

    url = f"sqlite:///{tmp_path / 'store.db'}"
    for name, value in (("LOJAL_DATABASE_URL", url), ("LOJAL_HOME", str(tmp_path / "state")),
                        ("SENDGRID_API_KEY", API_KEY)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LOJAL_SECRET", raising=False)  # the store's generated secret, shared by run and webhook
    engine = connect(url)
    write_sample_shop(engine, synthetic_shop(N, D1), replace=False)
    port = free_port()
    project = _project(tmp_path, port)
    events_url = f"http://127.0.0.1:{port}/sendgrid/events"
    with LocalSendGrid(LocalOptions(api_key=API_KEY, event_rates=RATES, seed=11, webhook_url=events_url)) as local:
        monkeypatch.setenv("LOJAL_SENDGRID_URL", local.url)
        monkeypatch.setenv(PUBLIC_KEY_ENV, local.public_key)
        webhook = app_for_project(project)
        webhook.apply_suppressions = False  # so the nightly run's own step is what applies them
        with Served(webhook, port):
            first = _night(project, D1)
            assert first["campaigns"][0]["delivered"] == N
            assert local.wait_for_events(30)
            body = next(a.body for a in local.accepted if a.to[0] not in _opted_out(local))
            clicker = body["personalizations"][0]["to"][0]["email"]
            link = body["headers"]["List-Unsubscribe"].strip("<>")
            assert link.startswith(f"http://127.0.0.1:{port}/unsubscribe/")
            forged = httpx.post(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"),
                                content=b"List-Unsubscribe=One-Click",
                                headers={"content-type": "application/x-www-form-urlencoded"})
            assert forged.status_code in (400, 403) and list_suppressions(engine) == []  # changed nothing
            answer = httpx.post(link, content=b"List-Unsubscribe=One-Click",
                                headers={"content-type": "application/x-www-form-urlencoded"})
            assert answer.status_code == 200
            assert [r["email"] for r in list_suppressions(engine)] == [clicker]  # exactly that recipient
            opted_out = _opted_out(local) | {clicker}
            second = _night(project, D2)
            assert local.wait_for_events(30)
            rerun = _night(project, D2)  # sends nothing new: its report must not be empty
            assert sum(c["delivered"] for c in rerun["campaigns"]) == 0

    customers = {f"kunde{i}@example.no": i for i in range(1, N + 1)}
    skipped = {customers[e] for e in opted_out}
    assert len(skipped) >= 10, "the rates above make a few of each"
    assert second["suppressions"]["suppressed"] == len(opted_out) - 1  # all but the link's, applied by the run
    [summary] = second["campaigns"]
    assert summary["excluded"].get("on the suppression list") == len(skipped)
    mailed_again = _mailed(engine, D2)
    assert set(mailed_again) == set(range(1, N + 1)) - skipped
    assert {r["email"] for r in list_suppressions(engine)} == _opted_out(local) | {clicker}  # the re-run applied night 2's

    out = tmp_path / "report.html"
    shown = CliRunner().invoke(cli, ["report", "--from", D1.isoformat(), "--to", D2.isoformat(), "--out", str(out),
                                     "--project", str(project)])
    assert shown.exit_code == 0, shown.output
    bounced = len(local.suppression_lists["bounces"])
    row = next((line for line in shown.output.splitlines() if line.strip(" │┃").startswith("hello")), shown.output)
    numbers = row.replace("│", " ").split()
    sent = N + N - len(skipped)
    assert numbers[1:3] == [str(sent), str(sent - bounced)]  # sent, delivered (a bounce is not delivered)
    assert numbers[5] == str(bounced)
    assert out.exists() and "Report with charts" in shown.output
    page = tmp_path / "state" / "runs" / D2.isoformat() / "tracking.html"
    assert second["tracking_report"] == str(page) and page.exists()
    markdown, table, link = (_newest_artifact(key) for key in ("tracking-report", "tracking-table",
                                                                "tracking-report-page"))
    assert suppressions_line(Applied(**rerun["suppressions"])) in markdown.data and "| hello |" in markdown.data
    assert "newly suppressed (" in suppressions_line(Applied(**second["suppressions"]))
    assert page.resolve().as_uri() in str(link.data)
    [row] = [r for r in _rows(table.data) if r["campaign"] == "hello"]  # the re-run's, from the store
    assert (row["sent"], row["bounced"]) == (sent, bounced)


def _rows(data) -> list[dict]:
    import json

    return json.loads(data) if isinstance(data, str) else data


def _newest_artifact(key: str):
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))

    found = anyio.run(read)
    assert found, f"no {key} artifact"
    return max(found, key=lambda a: a.created)  # other tests' runs share the server


def _opted_out(local) -> set[str]:
    lists = local.suppression_lists
    return {r["email"] for kind in ("bounces", "spam_reports", "unsubscribes") for r in lists[kind]}
