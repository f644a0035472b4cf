"""The strict local SendGrid, checked with SendGrid's own Python client and with raw requests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from lojal.sendgrid.local import LocalOptions, LocalSendGrid, parse_event_rates
from lojal.sendgrid.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER

KEY = "SG.local-test-key"
LOJAL = str(Path(sys.executable).parent / "lojal")


def body(i: int = 1, **changes) -> dict:
    base = {"personalizations": [{"to": [{"email": f"kari{i}@example.no", "name": "Kari"}]}],
            "from": {"email": "hei@nordlys.example", "name": "Nordlys"}, "subject": "Hei",
            "content": [{"type": "text/plain", "value": "Hei"}, {"type": "text/html", "value": "<p>Hei</p>"}],
            "categories": ["lojal"], "custom_args": {"lojal_message_id": f"m{i}"}}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def post(server: LocalSendGrid, payload, key: str = KEY, **kwargs) -> httpx.Response:
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return httpx.post(f"{server.url}/v3/mail/send", content=content, timeout=10,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, **kwargs)


@pytest.fixture
def server():
    with LocalSendGrid(LocalOptions(api_key=KEY, seed=7)) as sg:
        yield sg


def test_sendgrids_own_client_and_mail_helpers_are_accepted(server):
    from python_http_client.exceptions import UnauthorizedError
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Category, CustomArg, Mail

    mail = Mail(from_email="hei@nordlys.example", to_emails="kari@example.no", subject="Hei Kari",
                plain_text_content="Hei", html_content="<p>Hei</p>")
    mail.category = Category("lojal-win_back")
    mail.custom_arg = CustomArg("lojal_message_id", "m42")
    response = SendGridAPIClient(KEY, host=server.url).send(mail)
    assert response.status_code == 202 and response.headers["X-Message-Id"]
    [accepted] = server.accepted
    assert accepted.provider_id == response.headers["X-Message-Id"]
    assert accepted.message_ids == ["m42"] and accepted.to == ["kari@example.no"]
    assert accepted.body["categories"] == ["lojal-win_back"]

    with pytest.raises(UnauthorizedError) as refused:
        SendGridAPIClient("SG.wrong", host=server.url).send(mail)
    assert refused.value.status_code == 401
    assert json.loads(refused.value.body)["errors"][0]["message"].startswith("The provided authorization grant")
    assert server.stats()["accepted"] == 1 and server.stats()["unauthorized"] == 1


def test_sendgrids_client_gets_sendgrids_400_for_a_bad_body(server):
    from python_http_client.exceptions import BadRequestsError
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Category, Mail

    mail = Mail(from_email="hei@nordlys.example", to_emails="kari@example.no", subject="Hei",
                plain_text_content="Hei", html_content="<p>Hei</p>")
    mail.category = [Category(f"c{i}") for i in range(11)]  # the helper lets through what SendGrid refuses
    with pytest.raises(BadRequestsError) as rejected:
        SendGridAPIClient(KEY, host=server.url).send(mail)
    assert rejected.value.status_code == 400
    assert json.loads(rejected.value.body)["errors"][0]["field"] == "categories"
    assert server.stats()["rejected"] == 1 and server.stats()["accepted"] == 0


LIMIT_CASES = {
    "no personalization": (body(personalizations=[]), "personalizations"),
    "1001 personalizations": (body(personalizations=[{"to": [{"email": f"a{i}@example.no"}]} for i in range(1001)]),
                              "personalizations"),
    "1001 recipients": (body(personalizations=[{"to": [{"email": f"a{i}@example.no"}],
                                                "cc": [{"email": f"c{i}@example.no"}]} for i in range(501)]),
                        "personalizations"),
    "duplicate address": (body(personalizations=[{"to": [{"email": "a@example.no"}],
                                                  "bcc": [{"email": "A@example.no"}]}]), "personalizations.0.bcc"),
    "bad address": (body(personalizations=[{"to": [{"email": "not-an-address"}]}]), "personalizations.0.to.0.email"),
    "11 categories": (body(categories=[f"c{i}" for i in range(11)]), "categories"),
    "custom_args not strings": (body(custom_args={"lojal_message_id": 5}), "personalizations.0.custom_args"),
    "custom_args over 10,000 bytes": (body(custom_args={"lojal_message_id": "m", "big": "x" * 10_000}),
                                      "personalizations.0.custom_args"),
    "send_at beyond 72 hours": (body(send_at=int(time.time()) + 73 * 3600), "send_at"),
    "reserved header": (body(headers={"Reply-To": "x@example.no"}), "headers"),
    "reply_to with reply_to_list": (body(reply_to={"email": "r@example.no"},
                                         reply_to_list=[{"email": "r@example.no"}]), "reply_to_list"),
    "html before plain": (body(content=[{"type": "text/html", "value": "<p>x</p>"},
                                        {"type": "text/plain", "value": "x"}]), "content"),
    "empty content": (body(content=[{"type": "text/plain", "value": ""}]), "content.0.value"),
    "no from": (body(**{"from": None}), "from"),
    "no subject": (body(subject=None), "subject"),
}


@pytest.mark.parametrize("case", LIMIT_CASES)
def test_what_sendgrid_rejects_is_rejected_with_its_error_body(server, case):
    payload, field = LIMIT_CASES[case]
    response = post(server, payload)
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert field in [e["field"] for e in errors], errors
    assert all(set(e) == {"message", "field", "help"} and e["message"] for e in errors)
    assert server.stats()["accepted"] == 0 and server.stats()["rejected"] == 1


def test_limits_at_their_edge_are_accepted(server):
    edge = body(personalizations=[{"to": [{"email": f"a{i}@example.no"}]} for i in range(1000)],
                categories=[f"c{i}" for i in range(10)], send_at=int(time.time()) + 71 * 3600,
                headers={"List-Unsubscribe": "<https://shop.example/u/1>"})
    assert post(server, edge).status_code == 202


def test_over_30_mb_is_413_and_not_json_is_400(server):
    huge = json.dumps(body(content=[{"type": "text/plain", "value": "x" * (30 * 1024 * 1024 + 1)}])).encode()
    response = post(server, huge)
    assert response.status_code == 413 and "too large" in response.json()["errors"][0]["message"]
    assert post(server, b"{not json").status_code == 400
    # What Python's json writes but JSON does not allow (NaN), and bytes that are not UTF-8.
    assert post(server, json.dumps(body(send_at=float("nan"))).encode()).status_code == 400
    assert post(server, json.dumps(body(subject="Hei")).encode().replace(b"Hei", b"H\xff")).status_code == 400


def test_a_missing_or_wrong_bearer_key_is_401():
    with LocalSendGrid(LocalOptions(api_key=KEY)) as sg:
        assert post(sg, body(), key="SG.other").status_code == 401
        no_auth = httpx.post(f"{sg.url}/v3/mail/send", json=body())
        assert no_auth.status_code == 401 and sg.stats()["accepted"] == 0


def test_past_the_configured_rate_it_answers_429_with_rate_limit_headers():
    with LocalSendGrid(LocalOptions(rate_limit=5)) as sg, httpx.Client() as client:
        answers = [client.post(f"{sg.url}/v3/mail/send", json=body(i), headers={"Authorization": "Bearer x"})
                   for i in range(12)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and len([r for r in answers if r.status_code == 202]) >= 5
    assert int(limited[0].headers["X-RateLimit-Limit"]) == 5 and limited[0].headers["X-RateLimit-Remaining"] == "0"
    assert int(limited[0].headers["X-RateLimit-Reset"]) > time.time() - 1
    assert sg.stats()["rate_limited"] == len(limited)


def test_rate_limit_bursts_hold_only_at_the_start_of_each_period():
    def statuses_when(phase_from: float, phase_to: float, start: int) -> list[int]:
        while not phase_from <= time.time() % 2.0 < phase_to:
            time.sleep(0.01)
        return [client.post(f"{sg.url}/v3/mail/send", json=body(i), headers={"Authorization": "Bearer x"}).status_code
                for i in range(start, start + 5)]

    with LocalSendGrid(LocalOptions(rate_limit=1, rate_limit_every=2.0, rate_limit_for=1.0)) as sg, \
            httpx.Client() as client:
        free = statuses_when(1.05, 1.6, 0)     # the unlimited part of the period
        limited = statuses_when(0.05, 0.6, 10)  # the first second: 1 request a second
    assert free == [202] * 5
    assert limited.count(429) >= 4 and sg.stats()["rate_limited"] == limited.count(429)


def test_fault_flags_500s_latency_and_dropped_connections():
    with LocalSendGrid(LocalOptions(error_rate=1.0)) as sg:
        response = post(sg, body())
        assert response.status_code == 500 and response.json()["errors"]
        assert sg.stats()["server_errors"] == 1 and sg.stats()["accepted"] == 0
    with LocalSendGrid(LocalOptions(latency_ms=200)) as sg:
        started = time.monotonic()
        assert post(sg, body()).status_code == 202
        assert time.monotonic() - started >= 0.09
    with LocalSendGrid(LocalOptions(drop_rate=1.0, drop_accepted_share=1.0)) as sg:
        with pytest.raises(httpx.RemoteProtocolError):  # the body was read; no answer comes back
            post(sg, body(1))
        assert sg.stats()["dropped"] == 1 and sg.stats()["accepted"] == 1  # ... yet SendGrid had it
    with LocalSendGrid(LocalOptions(drop_rate=1.0, drop_accepted_share=0.0)) as sg:
        with pytest.raises(httpx.RemoteProtocolError):
            post(sg, body(1))
        assert sg.stats()["dropped"] == 1 and sg.stats()["accepted"] == 0


def test_stats_count_duplicates_by_lojal_message_id(server):
    for i in (1, 2, 1, 1):
        assert post(server, body(i)).status_code == 202
    stats = httpx.get(f"{server.url}/_local/stats").json()
    assert {k: stats[k] for k in ("accepted", "requests", "duplicates", "rejected")} == {
        "accepted": 4, "requests": 4, "duplicates": 2, "rejected": 0}
    assert server.accepted_message_ids() == {"m1": 3, "m2": 1}
    listed = httpx.get(f"{server.url}/_local/accepted").json()
    assert [a["message_ids"] for a in listed] == [["m1"], ["m2"], ["m1"], ["m1"]]


def test_sandbox_mode_is_validated_but_not_accepted(server):
    response = post(server, body(mail_settings={"sandbox_mode": {"enable": True}}))
    assert response.status_code == 200 and "X-Message-Id" not in response.headers
    assert server.stats()["accepted"] == 0 and server.stats()["sandboxed"] == 1


class _Receiver:
    """A webhook endpoint that fails its first `failures` posts, then records each batch."""

    def __init__(self, failures: int):
        self.failures, self.batches = failures, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.failures > 0:
                    outer.failures -= 1
                    self.send_response(503)
                else:
                    outer.batches.append((raw, self.headers[SIGNATURE_HEADER], self.headers[TIMESTAMP_HEADER]))
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/sendgrid/events"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_signed_event_batches_verify_with_sendgrids_helper_and_are_retried_until_2xx():
    from sendgrid.helpers.eventwebhook import EventWebhook

    receiver = _Receiver(failures=2)
    rates = parse_event_rates("delivered=1,open=1,machine_open=1,click=1,bounce=0,dropped=0,deferred=0")
    try:
        with LocalSendGrid(LocalOptions(webhook_url=receiver.url, event_rates=rates, webhook_batch_size=4,
                                        webhook_interval=0.05, seed=3)) as sg:
            for i in range(5):
                assert post(sg, body(i)).status_code == 202
            assert sg.wait_for_events(20), sg.stats()
            stats = sg.stats()
            public_key = sg.public_key
    finally:
        receiver.httpd.shutdown()
    assert stats["webhook_failures"] == 2 and stats["events_posted"] == stats["events_generated"] == 5 * 4
    verifier = EventWebhook(public_key)
    events = []
    for raw, signature, timestamp in receiver.batches:
        assert verifier.verify_signature(raw.decode(), signature, timestamp)
        assert not verifier.verify_signature(raw.decode().replace("open", "opem", 1), signature, timestamp)
        events += json.loads(raw)
    assert sorted(e["event"] for e in events if e["lojal_message_id"] == "m3") == [
        "click", "delivered", "open", "processed"]
    assert all(e["sg_machine_open"] for e in events if e["event"] == "open")
    assert len({e["sg_event_id"] for e in events}) == len(events)


@pytest.mark.slow
def test_the_cli_runs_as_its_own_process_and_prints_its_public_key(tmp_path):
    key_file = tmp_path / "webhook.pub"
    proc = subprocess.Popen([LOJAL, "sendgrid-local", "--port", "0", "--api-key", KEY,
                             "--public-key-out", str(key_file)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = re.search(r"listening on (http://\S+)", proc.stdout.readline()).group(1)
        public_key = proc.stdout.readline().split(": ", 1)[1].strip()
        assert key_file.read_text().strip() == public_key
        response = httpx.post(f"{url}/v3/mail/send", json=body(), headers={"Authorization": f"Bearer {KEY}"})
        assert response.status_code == 202 and response.headers["X-Message-Id"]
        assert httpx.get(f"{url}/_local/stats").json()["accepted"] == 1
    finally:
        proc.terminate()
        proc.wait(10)
