"""The Event Webhook: signatures checked before parsing, events normalized and stored durably once,
5xx while the database is down and nothing lost after SendGrid's retry. Keys are made in the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from lojal.errors import WebhookSignatureError
from lojal.sendgrid.app import WebhookApp, verifier_for
from lojal.sendgrid.events import parse_batch
from lojal.sendgrid.local import LocalOptions, LocalSendGrid
from lojal.sendgrid.webhook import (SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier, new_private_key,
                                    public_key_text, signed_headers)
from lojal.store import connect
from lojal.store.db import init_schema
from lojal.store.schema import delivery_events

# Shaped like SendGrid's documented sample batch (custom_args arrive at the top level of each event).
RECORDED = [
    {"email": "kari@example.no", "timestamp": 1764000000, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
     "event": "processed", "category": ["lojal", "lojal-win_back"], "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
     "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "lojal_message_id": "m00001",
     "lojal_campaign": "win_back"},
    {"email": "kari@example.no", "timestamp": 1764000005, "event": "deferred", "attempt": "1",
     "response": "400 try again later", "sg_event_id": "t7LEShmowp86DTdUW8M-GQ==",
     "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "lojal_message_id": "m00001"},
    {"email": "kari@example.no", "timestamp": 1764000009, "event": "delivered", "response": "250 OK",
     "sg_event_id": "rWVYmVk90MjZJ9iohOBa3w==", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
     "lojal_message_id": "m00001"},
    {"email": "kari@example.no", "timestamp": 1764000100, "event": "open", "sg_machine_open": True,
     "useragent": "Mozilla/5.0 (Macintosh)", "ip": "17.58.0.1", "sg_event_id": "FOTFFO0ecsBE-zxFXfs6WA==",
     "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "lojal_message_id": "m00001"},
    {"email": "kari@example.no", "timestamp": 1764000200, "event": "open", "sg_machine_open": False,
     "useragent": "Mozilla/5.0", "ip": "84.1.2.3", "sg_event_id": "ahSCB7xYcXFb-hEaawsPRw==",
     "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "lojal_message_id": "m00001"},
    {"email": "kari@example.no", "timestamp": 1764000300, "event": "click", "url": "https://shop.example/p/7",
     "sg_event_id": "kCAi1KttyQdEKHhdC-nuEA==", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
     "lojal_message_id": "m00001"},
    {"email": "ola@example.no", "timestamp": 1764000010, "event": "bounce", "type": "bounce", "status": "5.1.1",
     "reason": "550 5.1.1 no such user", "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
     "sg_message_id": "9a8b7c.filter0002.1.0", "lojal_message_id": "m00002"},
    {"email": "per@example.no", "timestamp": 1764000011, "event": "dropped", "reason": "Bounced Address",
     "sg_event_id": "zmzJhfJgAfUSOW80yEbPyw==", "sg_message_id": "1a2b3c.filter0003.1.0", "lojal_message_id": "m00003"},
    {"email": "kari@example.no", "timestamp": 1764000400, "event": "spamreport", "sg_event_id": "37nvH5QBz858KGVYCM4uOA==",
     "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "lojal_message_id": "m00001"},
    {"email": "kari@example.no", "timestamp": 1764000500, "event": "unsubscribe", "sg_event_id": "lI1Y4AEIxq6mOYE0yuzs8w==",
     "lojal_message_id": "m00001"},
    {"email": "kari@example.no", "timestamp": 1764000600, "event": "group_unsubscribe", "asm_group_id": 42,
     "sg_event_id": "Bd3ONPbRGKkaRhhLNR_9Nw==", "lojal_message_id": "m00001"},
    {"email": "kari@example.no", "timestamp": 1764000700, "event": "group_resubscribe", "asm_group_id": 42,
     "sg_event_id": "C2sp_hC8mEnV-1kuhG-r9A==", "lojal_message_id": "m00001"},
    {"email": "kari@example.no", "timestamp": 1764000800, "event": "something_new", "sg_event_id": "newkind0000000000000A=="},
]


def raw_batch(events=RECORDED) -> bytes:
    return json.dumps(events, separators=(",", ":")).encode()


@pytest.fixture
def key():
    return new_private_key()


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(delivery_events)).scalar_one()


@pytest.fixture
def store(database_url):
    """The store on SQLite and on PostgreSQL (which stores through COPY)."""
    engine = connect(database_url)
    init_schema(engine)
    yield engine
    engine.dispose()


def test_events_are_normalized_with_their_raw_payload():
    events = {e.sg_event_id: e for e in parse_batch(raw_batch())}
    kinds = [e.event for e in parse_batch(raw_batch())]
    assert kinds == ["processed", "deferred", "delivered", "opened", "opened", "clicked", "bounced", "dropped",
                     "complained", "unsubscribed", "group_unsubscribed", "group_resubscribed", "unknown"]
    machine = events["FOTFFO0ecsBE-zxFXfs6WA=="]
    assert machine.machine_open and not events["ahSCB7xYcXFb-hEaawsPRw=="].machine_open
    assert machine.message_id == "m00001" and machine.provider_message_id == "14c5d75ce93"
    assert machine.occurred_at.isoformat() == "2025-11-24T16:01:40"
    assert json.loads(machine.payload)["useragent"] == "Mozilla/5.0 (Macintosh)"
    bounce = events["6g4ZI7SA-xmRDv57GoPIPw=="]
    assert bounce.bounce_type == "bounce" and "no such user" in bounce.reason
    assert events["kCAi1KttyQdEKHhdC-nuEA=="].url == "https://shop.example/p/7"
    assert events["Bd3ONPbRGKkaRhhLNR_9Nw=="].asm_group_id == 42
    assert events["newkind0000000000000A=="].raw_event == "something_new"
    odd = parse_batch(b'[{"event": "open"}, 5]')
    assert [e.event for e in odd] == ["opened", "unknown"] and all(e.sg_event_id.startswith("sha256:") for e in odd)


def test_the_verifier_refuses_missing_forged_tampered_and_stale_signatures(key):
    verifier = Verifier(key.public_key(), max_age_seconds=300)
    body = raw_batch()
    good = signed_headers(key, body)
    verifier.verify(body, good[SIGNATURE_HEADER], good[TIMESTAMP_HEADER])
    forged = signed_headers(new_private_key(), body)
    stale = signed_headers(key, body, now=time.time() - 301)
    cases = {"missing": (body, None, good[TIMESTAMP_HEADER], 401),
             "forged": (body, forged[SIGNATURE_HEADER], forged[TIMESTAMP_HEADER], 403),
             "tampered": (body.replace(b"m00002", b"m00009"), good[SIGNATURE_HEADER], good[TIMESTAMP_HEADER], 403),
             "timestamp moved": (body, good[SIGNATURE_HEADER], str(int(good[TIMESTAMP_HEADER]) + 1), 403),
             "stale": (body, stale[SIGNATURE_HEADER], stale[TIMESTAMP_HEADER], 403),
             "garbage": (body, "not base64!", good[TIMESTAMP_HEADER], 401)}
    for name, (payload, signature, timestamp, status) in cases.items():
        with pytest.raises(WebhookSignatureError) as refused:
            verifier.verify(payload, signature, timestamp)
        assert refused.value.status == status, name


def test_sendgrids_format_of_the_key_is_what_we_load(key):
    from sendgrid.helpers.eventwebhook import EventWebhook

    body = raw_batch()
    headers = signed_headers(key, body)
    assert EventWebhook(public_key_text(key)).verify_signature(body.decode(), headers[SIGNATURE_HEADER],
                                                              headers[TIMESTAMP_HEADER])
    verifier_for(public_key_text(key)).verify(body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER])


def test_only_authentic_fresh_posts_are_stored_and_a_repeat_is_stored_once(key, store, served):
    app = WebhookApp(store, verifier_for(public_key_text(key), 300), max_body_bytes=64 * 1024)
    body = raw_batch()
    with served(app) as web:
        url = f"{web.url}/sendgrid/events"
        forged = httpx.post(url, content=body, headers=signed_headers(new_private_key(), body))
        good = signed_headers(key, body)
        tampered = httpx.post(url, content=body.replace(b"kari@", b"eve@"), headers=good)
        stale = httpx.post(url, content=body, headers=signed_headers(key, body, now=time.time() - 3600))
        missing = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        assert [forged.status_code, tampered.status_code, stale.status_code, missing.status_code] == [403, 403, 403, 401]
        assert count(store) == 0
        first = httpx.post(url, content=body, headers=good)
        replayed = httpx.post(url, content=body, headers=good)  # the same signed post again
        assert first.status_code == replayed.status_code == 200
        assert first.json() == {"received": len(RECORDED), "stored": len(RECORDED)}
        assert replayed.json()["stored"] == 0
        assert count(store) == len(RECORDED)
        # A later batch repeating some events (SendGrid retried) adds only the new ones.
        again = raw_batch(RECORDED[:3] + [dict(RECORDED[0], sg_event_id="brand-new-event-id")])
        assert httpx.post(url, content=again, headers=signed_headers(key, again)).json()["stored"] == 1
        big = raw_batch(RECORDED * 60)
        assert httpx.post(url, content=big, headers=signed_headers(key, big)).status_code == 413
        not_array = b'{"event": "open"}'
        assert httpx.post(url, content=not_array, headers=signed_headers(key, not_array)).status_code == 400
    with store.connect() as conn:
        row = conn.execute(select(delivery_events).where(
            delivery_events.c.sg_event_id == "FOTFFO0ecsBE-zxFXfs6WA==")).mappings().one()
    assert row["event"] == "opened" and row["machine_open"] and row["message_id"] == "m00001"
    assert json.loads(row["payload"])["sg_machine_open"] is True


def test_unsigned_posts_only_with_the_development_flag(store, served):
    with served(WebhookApp(store, None)) as web:
        answer = httpx.post(f"{web.url}/sendgrid/events", content=raw_batch())
    assert answer.status_code == 200 and count(store) == len(RECORDED)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_outage_answers_503_and_nothing_is_lost_after_sendgrids_retry(postgres_url, served):
    engine = connect(postgres_url)
    init_schema(engine)
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = postgres_url.rsplit("/", 1)[1]
    sender_key = new_private_key()
    app = WebhookApp(engine, verifier_for(public_key_text(sender_key), 300))
    try:
        with served(app) as web:
            with admin.connect() as conn:  # the outage: no connection to the store is possible
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": name})
            with LocalSendGrid(LocalOptions(webhook_url=f"{web.url}/sendgrid/events", webhook_batch_size=50,
                                            webhook_interval=0.05, seed=5)) as sg:
                sg.signing_key, sg.public_key = sender_key, public_key_text(sender_key)
                for i in range(40):
                    response = httpx.post(f"{sg.url}/v3/mail/send", headers={"Authorization": "Bearer k"},
                                          json={"personalizations": [{"to": [{"email": f"k{i}@example.no"}]}],
                                                "from": {"email": "hei@nordlys.example"}, "subject": "Hei",
                                                "content": [{"type": "text/plain", "value": "Hei"}],
                                                "custom_args": {"lojal_message_id": f"m{i}"}})
                    assert response.status_code == 202
                deadline = time.monotonic() + 20
                while app.counts["failed"] < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert app.counts["failed"] >= 2 and app.counts["stored"] == 0  # answered 503, stored nothing
                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
                assert sg.wait_for_events(30), sg.stats()
                generated = sg.stats()["events_generated"]
                assert sg.stats()["webhook_failures"] >= 2
        assert count(engine) == generated == app.counts["stored"]
        with engine.connect() as conn:
            processed = conn.execute(select(func.count(func.distinct(delivery_events.c.message_id))).where(
                delivery_events.c.event == "processed")).scalar_one()
        assert processed == 40
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        engine.dispose()
        admin.dispose()


@pytest.mark.slow
def test_lojal_webhook_serve_runs_as_a_process_and_needs_a_key(project, tmp_path):
    lojal = str(Path(sys.executable).parent / "lojal")
    env = {k: v for k, v in os.environ.items() if k != "LOJAL_SENDGRID_WEBHOOK_PUBLIC_KEY"}
    refused = subprocess.run([lojal, "webhook", "serve", "--port", "0", "--project", str(project)],
                             capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode != 0 and "LOJAL_SENDGRID_WEBHOOK_PUBLIC_KEY" in refused.stderr + refused.stdout

    key = new_private_key()
    port = _free_port()
    proc = subprocess.Popen([lojal, "webhook", "serve", "--port", str(port), "--project", str(project)],
                            env={**env, "LOJAL_SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_text(key)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/sendgrid/events"
        body = raw_batch()
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(url, content=body, headers=signed_headers(key, body))
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["stored"] == len(RECORDED)
    finally:
        proc.terminate()
        proc.wait(10)
    printed = proc.stdout.read()
    assert f"stored {len(RECORDED)} of {len(RECORDED)} events: opened 2 (1 machine)" in printed, printed
    db = os.environ.get("LOJAL_HOME") or str(tmp_path / "state")
    stores = list(Path(db).rglob("*.db"))
    assert stores, "the webhook wrote to the project's default store"
    engine = create_engine(f"sqlite:///{stores[0]}")
    assert count(engine) == len(RECORDED)
    engine.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
