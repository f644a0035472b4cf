"""Settling `sending` and `unknown` rows from the Event Webhook's events and the outbox's record,
on SQLite and PostgreSQL, and `lojal delivery unknown`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import insert
from typer.testing import CliRunner

from delivery.ledger_helpers import NIGHT, planned, row
from lojal import ledger
from lojal.cli import app
from lojal.delivery.base import SENT, UNKNOWN, DeliveryResult
from lojal.delivery.reconcile import Policy, reconcile
from lojal.store.schema import delivery_events

NOW = datetime(2026, 11, 25, 12, 0)


def sent_window(engine, ids, outcomes, backend="sendgrid"):
    attempts = ledger.claim(engine, ids, NIGHT, backend)
    ledger.settle(engine, [DeliveryResult(m, o, error=None if o == SENT else "dropped after the body was sent")
                           for m, o in zip(ids, outcomes)], attempts, NIGHT, max_attempts=5)


def event(engine, message_id, kind="processed", at=datetime(2026, 11, 24, 21, 0, 5), n=[0]):
    n[0] += 1
    with engine.begin() as conn:
        conn.execute(insert(delivery_events).values(
            sg_event_id=f"ev-{message_id}-{kind}-{n[0]}", event=kind, raw_event=kind, message_id=message_id,
            provider_message_id=f"sg-{message_id[:8]}", email="x@example.com", occurred_at=at, received_at=at,
            machine_open=False, payload="{}"))


def test_an_event_proves_acceptance(engine):
    unknown, crashed = planned(engine, "win_back", [1, 2])
    sent_window(engine, [unknown], [UNKNOWN])
    ledger.claim(engine, [crashed], NIGHT, "sendgrid")  # a run died with this request in flight
    event(engine, unknown, "delivered", at=datetime(2026, 11, 24, 21, 0, 9))
    event(engine, unknown, "processed", at=datetime(2026, 11, 24, 21, 0, 5))
    event(engine, crashed, "dropped")

    moved = reconcile(engine, Policy(), now=NOW)
    assert moved == {"unknown -> sent": 1, "sending -> sent": 1}
    settled = row(engine, unknown)
    assert settled["state"] == "sent" and pd.Timestamp(settled["accepted_at"]) == pd.Timestamp(2026, 11, 24, 21, 0, 5)
    assert settled["provider_message_id"] == f"sg-{unknown[:8]}"
    assert pd.Timestamp(settled["accepted_on"]).date() == NIGHT
    assert ledger.unsettled_rows(engine).empty


def test_without_events_it_stays_unknown_until_evidence_or_the_settle_time(engine):
    lonely, = planned(engine, "win_back", [1])
    ledger.claim(engine, [lonely], NIGHT, "sendgrid")  # in flight when the run was killed
    assert reconcile(engine, Policy(grace_minutes=0), now=NOW) == {"sending -> unknown": 1}
    assert row(engine, lonely)["state"] == "unknown"
    # no evidence either way: nothing happens within unknown_settle_hours ...
    assert reconcile(engine, Policy(grace_minutes=0, settle_hours=72), now=datetime.utcnow()) == {}
    # ... after it, it is abandoned and assumed received (counted, never sent again)
    later = datetime.utcnow() + timedelta(hours=73)
    assert reconcile(engine, Policy(settle_hours=72), now=later) == {"unknown -> abandoned": 1}
    final = row(engine, lonely)
    assert final["state"] == "abandoned" and "assumed received" in final["error"]
    assert ledger.received_rows(engine, ["win_back"])["customer_id"].tolist() == [1]


def test_events_for_the_same_window_but_none_for_it_mean_not_accepted(engine):
    lost, neighbour = planned(engine, "win_back", [1, 2])
    sent_window(engine, [lost, neighbour], [UNKNOWN, SENT])
    event(engine, neighbour)
    # within the grace period: wait for its events
    assert reconcile(engine, Policy(grace_minutes=60), now=datetime.utcnow()) == {}
    moved = reconcile(engine, Policy(grace_minutes=60), now=datetime.utcnow() + timedelta(minutes=61))
    assert moved == {"unknown -> failed": 1}
    assert row(engine, lost)["state"] == "failed" and "no provider event" in row(engine, lost)["error"]
    assert ledger.claim(engine, [lost], NIGHT, "sendgrid") == {lost: 2}  # sent again, as attempt 2


def test_outbox_rows_are_settled_from_the_outbox_record(engine, tmp_path):
    written, not_written = planned(engine, "win_back", [1, 2])
    ledger.claim(engine, [written, not_written], NIGHT, "outbox")
    eml = tmp_path / NIGHT.isoformat() / "win_back" / f"{written}.eml"
    eml.parent.mkdir(parents=True)
    eml.write_text("From: x")
    moved = reconcile(engine, Policy(), tmp_path, now=NOW)
    assert moved == {"sending -> sent": 1, "sending -> failed": 1}
    assert row(engine, written)["provider_message_id"] == f"{NIGHT.isoformat()}/win_back/{written}.eml"
    assert row(engine, not_written)["state"] == "failed"


def test_delivery_unknown_lists_them_for_an_operator(engine, project, monkeypatch, database_url):
    monkeypatch.setenv("LOJAL_DATABASE_URL", database_url)
    first, second, fine = planned(engine, "win_back", [1, 2, 3])
    sent_window(engine, [first, second, fine], [UNKNOWN, UNKNOWN, SENT])
    result = CliRunner().invoke(app, ["delivery", "unknown", "--json", "--project", str(project)])
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["message_id"] for r in listed} == {first, second}
    assert all(r["state"] == "unknown" and r["attempts"] == 1 and r["night"] == NIGHT.isoformat() for r in listed)
    table = CliRunner().invoke(app, ["delivery", "unknown", "--project", str(project)])
    assert "2 message(s) with an unknown outcome" in table.stdout and first in table.stdout
