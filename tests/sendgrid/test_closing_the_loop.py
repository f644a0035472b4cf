"""End to end on loopback: the local SendGrid posts signed events to the webhook app, bounces,
complaints and unsubscribes become suppressions at once, a one-click unsubscribe through a real
HTTP request suppresses exactly its recipient, and `suppressions sync` finds nothing left to add."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from lojal.sendgrid.app import WebhookApp, verifier_for
from lojal.sendgrid.local import LocalOptions, LocalSendGrid, parse_event_rates
from lojal.sendgrid.webhook import new_private_key, public_key_text
from lojal.store import connect
from lojal.store.db import init_schema
from lojal.store.schema import delivery_events
from lojal.suppressions import list_suppressions
from lojal.tracking.sync import client_for, sync
from lojal.tracking.tokens import Secrets, make_unsubscribe_token
from lojal.tracking.unsubscribe import UnsubscribeEndpoint


def mail(sg, i: int) -> None:
    response = httpx.post(f"{sg.url}/v3/mail/send", headers={"Authorization": "Bearer SG.k"},
                          json={"personalizations": [{"to": [{"email": f"k{i}@example.no"}]}],
                                "from": {"email": "hei@nordlys.example"}, "subject": "Hei",
                                "content": [{"type": "text/plain", "value": "Hei"}],
                                "custom_args": {"lojal_message_id": f"m{i}"}})
    assert response.status_code == 202


def test_events_and_one_click_unsubscribes_become_suppressions_the_same_night(tmp_path, served):
    engine = connect(f"sqlite:///{tmp_path / 'store.db'}")
    init_schema(engine)
    sender_key, secrets = new_private_key(), Secrets(b"x" * 40)
    app = WebhookApp(engine, verifier_for(public_key_text(sender_key), 300),
                     unsubscribe=UnsubscribeEndpoint(engine, secrets, "Nordlys Hjem"))
    rates = parse_event_rates("bounce=0.2,spamreport=0.1,unsubscribe=0.1,group_unsubscribe=0.1,open=0.5,click=0.2")
    with served(app) as web, LocalSendGrid(LocalOptions(webhook_url=f"{web.url}/sendgrid/events", event_rates=rates,
                                                        webhook_batch_size=25, webhook_interval=0.05, seed=11)) as sg:
        sg.signing_key, sg.public_key = sender_key, public_key_text(sender_key)
        for i in range(120):
            mail(sg, i)
        assert sg.wait_for_events(30), sg.stats()
        token = make_unsubscribe_token(secrets, "m119", "k119@example.no", "nb")
        one_click = httpx.post(f"{web.url}/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
                               headers={"content-type": "application/x-www-form-urlencoded"})
        altered = token[:-1] + ("B" if token.endswith("A") else "A")
        forged = httpx.post(f"{web.url}/unsubscribe/{altered}", content=b"List-Unsubscribe=One-Click",
                            headers={"content-type": "application/x-www-form-urlencoded"})
        with client_for(sg.url, "SG.k") as client:
            synced = sync(engine, client)
    assert one_click.status_code == 200 and 400 <= forged.status_code < 500
    with engine.connect() as conn:
        events = conn.execute(select(delivery_events.c.email, delivery_events.c.event, delivery_events.c.bounce_type)).all()
    expected = {e.email for e in events if e.event in ("complained", "unsubscribed", "group_unsubscribed")
                or (e.event == "bounced" and e.bounce_type == "bounce")} | {"k119@example.no"}
    suppressed = {r["email"]: r["reason"] for r in list_suppressions(engine)}
    assert len(expected) > 20 and set(suppressed) == expected
    assert {"bounce", "spam_report", "unsubscribe", "group_unsubscribe"} <= set(suppressed.values())
    assert synced.added == 0 and sum(synced.read.values()) > 20  # SendGrid's lists hold nothing new
