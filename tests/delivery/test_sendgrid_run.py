"""Runs through the local SendGrid, in process: a refused key stops the whole run at once naming
the setting, and a campaign whose error rate passes the threshold pauses itself and says so."""

from __future__ import annotations

from datetime import date

import pytest

from delivery.big_night import API_KEY, one_campaign_project, synthetic_shop
from lojal import ledger
from lojal.errors import DeliveryAuthError
from lojal.sample.store import write_sample_shop
from lojal.sendgrid.local import LocalOptions, LocalSendGrid
from lojal.store import connect

D = date(2026, 11, 24)
pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def night(tmp_path, monkeypatch):
    def make(n: int, **delivery):
        url = f"sqlite:///{tmp_path / 'store.db'}"
        monkeypatch.setenv("LOJAL_DATABASE_URL", url)
        monkeypatch.setenv("LOJAL_HOME", str(tmp_path / "state"))
        monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
        engine = connect(url)
        write_sample_shop(engine, synthetic_shop(n, D), replace=False)
        return one_campaign_project(tmp_path / "project", **delivery), engine
    return make


def run(project, **kwargs) -> dict:
    """The night's result; a night that stopped raises its error. A partial night (some messages
    failed) ends in a Failed state carrying the result, as automations see it."""
    from lojal.flows.nightly import nightly

    state = nightly(run_date=D, project_dir=str(project), delivery="sendgrid", return_state=True, **kwargs)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        raise outcome
    assert state.is_completed() == (sum(c["failed"] for c in outcome["campaigns"]) == 0), state
    return outcome


def test_a_refused_key_stops_the_run_at_once_naming_the_setting(night, monkeypatch):
    project, engine = night(200)
    wrong = "SG.not-the-right-key.fedcba9876543210"
    monkeypatch.setenv("SENDGRID_API_KEY", wrong)
    with LocalSendGrid(LocalOptions(api_key=API_KEY)) as local:
        monkeypatch.setenv("LOJAL_SENDGRID_URL", local.url)
        with pytest.raises(DeliveryAuthError) as caught:
            run(project)
        stats = local.stats()
    assert "SENDGRID_API_KEY" in str(caught.value) and wrong not in str(caught.value)
    # the window's first requests (16 in flight), the rest of it not posted, then the run stopped
    assert stats["accepted"] == 0 and 1 <= stats["unauthorized"] <= 16
    counts = ledger.state_counts(engine)
    assert counts == {"failed": 64, "planned": 200 - 64}, counts  # the window's claimed rows, for a later run
    failed = ledger.states(engine).query("state == 'failed'")
    assert failed["error"].str.startswith("not sent: SendGrid refused the API key").all()


def test_a_campaign_pauses_itself_when_its_error_rate_passes_the_threshold(night, monkeypatch):
    project, engine = night(300, pause_error_rate=0.5, pause_min_messages=40, max_attempts=3,
                            retry_pause_seconds=0)
    with LocalSendGrid(LocalOptions(api_key=API_KEY, error_rate=0.9, seed=4)) as local:
        monkeypatch.setenv("LOJAL_SENDGRID_URL", local.url)
        result = run(project)
        stats = local.stats()
    [summary] = result["campaigns"]
    assert summary["paused"].startswith("paused: ") and "pause_error_rate 50%" in summary["paused"]
    counts = ledger.state_counts(engine)
    assert counts["planned"] > 200, counts  # the rest waits for a later run
    assert counts["sent"] == stats["accepted"] == summary["delivered"]
    assert stats["requests"] < 100
