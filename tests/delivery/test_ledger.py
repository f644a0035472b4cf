"""The ledger's states, on SQLite and PostgreSQL: every attempt is recorded before and after."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd

from delivery.ledger_helpers import NIGHT, planned, row
from lojal import ledger, pipeline
from lojal.config import Delivery, SendGridSettings, Tracking
from lojal.delivery.base import FAILED, REJECTED, SENT, UNKNOWN, DeliveryResult
from lojal.delivery.message import OutgoingMessage
from lojal.sendgrid.backend import SendGridBackend
from lojal.sendgrid.local import LocalOptions, LocalSendGrid


def test_an_attempt_is_committed_sending_then_settled_sent(engine):
    [mid] = planned(engine, "win_back", [1])
    assert row(engine, mid)["state"] == "planned" and row(engine, mid)["attempts"] == 0

    attempts = ledger.claim(engine, [mid], NIGHT + timedelta(days=1), "sendgrid")
    assert attempts == {mid: 1}
    claimed = row(engine, mid)
    assert claimed["state"] == "sending" and claimed["backend"] == "sendgrid" and claimed["attempted_at"] is not None
    assert pd.Timestamp(claimed["attempt_run_date"]).date() == NIGHT + timedelta(days=1)

    accepted = datetime(2026, 11, 25, 20, 0, 1)
    ledger.settle(engine, [DeliveryResult(mid, SENT, "sg-123", accepted_at=accepted)], attempts,
                  NIGHT + timedelta(days=1), max_attempts=5)
    sent = row(engine, mid)
    assert sent["state"] == "sent" and sent["provider_message_id"] == "sg-123"
    assert pd.Timestamp(sent["accepted_at"]) == pd.Timestamp(accepted)
    # planned on night D, accepted on D+1: caps count it on D+1
    assert pd.Timestamp(sent["run_date"]).date() == NIGHT
    assert pd.Timestamp(sent["accepted_on"]).date() == NIGHT + timedelta(days=1)
    received = ledger.received_rows(engine, ["win_back"])
    assert received["night"].tolist() == [NIGHT + timedelta(days=1)]
    assert ledger.claim(engine, [mid], NIGHT, "sendgrid") == {}  # never handed over again


def test_rejected_is_final_and_unknown_is_never_resent_blindly(engine):
    rejected, unknown = planned(engine, "win_back", [1, 2])
    attempts = ledger.claim(engine, [rejected, unknown], NIGHT, "sendgrid")
    ledger.settle(engine, [DeliveryResult(rejected, REJECTED, error="400: invalid email"),
                           DeliveryResult(unknown, UNKNOWN, error="connection dropped after the body was sent")],
                  attempts, NIGHT, max_attempts=5)
    assert row(engine, rejected)["error"] == "400: invalid email"
    assert ledger.claim(engine, [rejected, unknown], NIGHT, "sendgrid") == {}
    assert [r["state"] for r in map(lambda m: row(engine, m), (rejected, unknown))] == ["rejected", "unknown"]
    # an unknown outcome may have been received: it holds the customer's place
    assert ledger.received_rows(engine, ["win_back"])["customer_id"].tolist() == [2]
    assert ledger.unsettled_rows(engine)["message_id"].tolist() == [unknown]


def test_failed_is_retried_up_to_the_cap_then_abandoned_with_the_reason(engine):
    [mid] = planned(engine, "win_back", [1])
    for attempt in (1, 2, 3):
        attempts = ledger.claim(engine, [mid], NIGHT, "sendgrid")
        assert attempts == {mid: attempt}
        [settled] = ledger.settle(engine, [DeliveryResult(mid, FAILED, error="500 Internal Server Error")],
                                  attempts, NIGHT, max_attempts=3)
    assert settled.state == "abandoned"
    final = row(engine, mid)
    assert final["state"] == "abandoned" and final["attempts"] == 3
    assert final["error"] == "gave up after 3 attempts: 500 Internal Server Error"
    assert ledger.claim(engine, [mid], NIGHT, "sendgrid") == {}


def test_a_message_that_could_not_be_built_fails_then_is_abandoned(engine):
    [mid] = planned(engine, "win_back", [1])
    ledger.fail_unbuilt(engine, {mid: "RenderError: 'first_name' is undefined"}, max_attempts=2)
    assert (row(engine, mid)["state"], row(engine, mid)["attempts"]) == ("failed", 1)
    ledger.fail_unbuilt(engine, {mid: "RenderError: 'first_name' is undefined"}, max_attempts=2)
    assert row(engine, mid)["state"] == "abandoned"
    assert row(engine, mid)["error"] == "gave up after the attempt cap: RenderError: 'first_name' is undefined"


def test_carried_rows_and_expiry(engine):
    old = planned(engine, "post_purchase", [1, 2], night=date(2026, 11, 20))
    planned(engine, "post_purchase", [3], night=NIGHT)
    carried = ledger.carried_rows(engine, ["post_purchase"], NIGHT)
    assert sorted(carried["message_id"]) == sorted(old)
    ledger.close(engine, {old[0]: "not sent within send_within_days: 3"}, ledger.EXPIRED)
    assert row(engine, old[0])["state"] == "expired" and "send_within_days" in row(engine, old[0])["error"]
    assert ledger.carried_rows(engine, ["post_purchase"], NIGHT)["message_id"].tolist() == [old[1]]


def test_a_window_of_mixed_outcomes_settles_in_one_go_and_leaves_rows_not_sending_alone(engine):
    ids = planned(engine, "win_back", [1, 2, 3, 4])
    attempts = ledger.claim(engine, ids[:3], NIGHT, "sendgrid")  # the fourth stays planned
    accepted = datetime(2026, 11, 24, 21, 30, 5, 250000)
    results = [DeliveryResult(ids[0], SENT, "sg-1", accepted_at=accepted),
               DeliveryResult(ids[1], FAILED, error="503: try later"),
               DeliveryResult(ids[2], REJECTED, error="400: 'to' is not an address ' ; DROP TABLE x; --"),
               DeliveryResult(ids[3], SENT, "sg-4", accepted_at=accepted)]  # not claimed: must not settle
    settled = ledger.settle(engine, results, {**attempts, ids[3]: 1}, NIGHT, max_attempts=5)
    assert [s.state for s in settled] == ["sent", "failed", "rejected", "sent"]
    rows = [row(engine, m) for m in ids]
    assert [r["state"] for r in rows] == ["sent", "failed", "rejected", "planned"]
    assert pd.Timestamp(rows[0]["accepted_at"]) == pd.Timestamp(accepted) and rows[0]["provider_message_id"] == "sg-1"
    assert pd.Timestamp(rows[0]["accepted_on"]).date() == NIGHT
    assert rows[1]["error"] == "503: try later" and pd.isna(rows[1]["accepted_at"]) and pd.isna(rows[1]["accepted_on"])
    assert rows[2]["error"].endswith("DROP TABLE x; --") and rows[3]["provider_message_id"] is None


def test_plan_returns_new_rows_as_the_ledger_holds_them(engine):
    """New rows are returned as written (not read back): the same frame a second plan of the night
    reads from the store, None and NaT included."""
    rows = pd.DataFrame({"customer_id": [3, 1, 2], "occasion_key": ["once", "once", "once"],
                         "state": ["planned", "held_out", None], "variant": ["a", None, float("nan")],
                         "send_at": [datetime(2026, 11, 24, 8, 30), None, pd.NaT],
                         "offer_code": [None, "CODE-1", None], "made_from": ['{"items": []}', None, None]})
    first = ledger.plan(engine, "win_back", NIGHT, rows)
    again = ledger.plan(engine, "win_back", NIGHT, rows)
    assert first["customer_id"].tolist() == [1, 2, 3]
    assert first["state"].tolist() == ["held_out", "planned", "planned"]
    for column in first.columns:
        assert [None if pd.isna(v) else v for v in first[column]] == [None if pd.isna(v) else v for v in again[column]], column
    assert first["send_at"].tolist()[2] == pd.Timestamp(datetime(2026, 11, 24, 8, 30))


class _Watching:
    """The SendGrid backend, noting for each window handed over how many ledger rows were `sending`."""

    def __init__(self, backend, engine):
        self.backend, self.engine, self.windows = backend, engine, []
        self.name, self.concurrency = backend.name, backend.concurrency

    def send_batch(self, messages):
        self.windows.append((len(messages), ledger.state_counts(self.engine).get("sending", 0)))
        return self.backend.send_batch(messages)


def test_messages_are_claimed_in_windows_of_window_size_before_their_requests_leave(engine):
    key = "SG.window-test-key-0123456789"
    with LocalSendGrid(LocalOptions(api_key=key)) as local:
        for campaign, size, expected in (("win_back", 64, [64, 64, 22]),
                                         ("vip_care", 2, [4] * 37 + [2])):  # never below the concurrency (4)
            messages = [OutgoingMessage(message_id=m, campaign_id=campaign, customer_id=c, to_email=f"c{c}@example.no", to_name="Kari",
                                        from_email="hei@nordlys.example", from_name="Nordlys", subject="Hei", html="<p>Hei</p>", text="Hei")
                        for c, m in enumerate(planned(engine, campaign, range(1, 151)), 1)]
            backend = _Watching(SendGridBackend(SendGridSettings(concurrency=4), Tracking(), api_key=key,
                                                base_url=local.url), engine)
            outcome = pipeline.deliver(engine, backend, messages, NIGHT, Delivery(window_size=size))
            backend.backend.finish()
            assert [n for n, _ in backend.windows] == expected
            assert all(sending == n for n, sending in backend.windows)  # committed `sending` before they left
            assert outcome.delivered == 150
        assert local.stats()["accepted"] == 300
    assert ledger.state_counts(engine) == {"sent": 300}
