"""Messages, the outbox backend and the SendGrid request body."""

from __future__ import annotations

import email
import json
from email import policy

import pytest

from lojal.config import SendGridSettings, Tracking
from lojal.delivery import OutboxBackend, OutgoingMessage
from lojal.delivery.faults import FailAfter
from lojal.errors import DeliveryError, HeaderInjectionError
from lojal.sendgrid.payload import mail_send_body


def message(i: int = 1, **changes) -> OutgoingMessage:
    fields = dict(message_id=f"m{i:04d}", campaign_id="win_back", customer_id=i, to_email=f"kari{i}@example.no",
                  to_name="Kari Østby", from_email="hei@nordlys.example", from_name="Nordlys Hjem",
                  subject="Vi savner deg, Kari – 10 % på kaffe", html="<p>Hei &lt;Kari&gt;</p>", text="Hei Kari",
                  reply_to="hjelp@nordlys.example", categories=("lojal", "lojal-win_back"),
                  custom_args={"lojal_message_id": f"m{i:04d}", "lojal_campaign": "win_back"},
                  headers={"List-Unsubscribe": "<https://nordlys.example/unsubscribe/x>",
                           "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    fields.update(changes)
    return OutgoingMessage(**fields)


@pytest.mark.parametrize("field,value", [
    ("subject", "Hello\r\nBcc: victim@example.com"),
    ("subject", "Hello\nX-Injected: 1"),
    ("to_name", "Kari\rBcc: x@example.com"),
    ("to_email", "kari@example.no\nBcc: x@example.com"),
    ("to_email", "kari@example.no, other@example.com"),
    ("headers", {"X-Campaign": "a\r\nBcc: x@example.com"}),
])
def test_header_injection_is_rejected(field, value):
    with pytest.raises(HeaderInjectionError):
        message(**{field: value})


def test_eml_is_multipart_with_unicode_headers():
    raw = message().to_eml()
    parsed = email.message_from_string(raw, policy=policy.default)
    assert parsed["Subject"] == "Vi savner deg, Kari – 10 % på kaffe"
    assert parsed["To"].addresses[0].display_name == "Kari Østby"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["From"].addresses[0].addr_spec == "hei@nordlys.example"
    text, html = (part.get_content() for part in parsed.iter_parts())
    assert text == "Hei Kari" and html == "<p>Hei &lt;Kari&gt;</p>"
    assert not parsed.defects


def test_long_unicode_subject_is_folded_and_round_trips():
    subject = "Velkommen til Gull-nivå, Åse! Her er tre ting vi tror du vil like – og en overraskelse på kjøpet"
    raw = message(subject=subject).to_eml()
    header_lines = raw.split("\r\n\r\n", 1)[0].split("\r\n")
    start = next(i for i, line in enumerate(header_lines) if line.startswith("Subject: "))
    subject_lines = [header_lines[start]] + [
        line for line in header_lines[start + 1:] if line.startswith(" ")][: len(header_lines)]
    assert len(subject_lines) > 1 and max(len(line) for line in subject_lines) <= 78
    assert max(len(line) for line in header_lines) <= 998
    assert email.message_from_string(raw, policy=policy.default)["Subject"] == subject


def test_sendgrid_body_shape():
    body = mail_send_body(message(), Tracking(), SendGridSettings(asm_group_id=42))
    assert body["content"][0]["type"] == "text/plain"
    assert body["personalizations"] == [{"to": [{"email": "kari1@example.no", "name": "Kari Østby"}]}]
    assert body["custom_args"] == {"lojal_message_id": "m0001", "lojal_campaign": "win_back"}
    assert all(isinstance(v, str) for v in body["custom_args"].values())
    assert body["asm"] == {"group_id": 42}
    assert body["tracking_settings"]["open_tracking"] == {"enable": True}


def test_sendgrid_body_validates_against_the_official_openapi_description(mail_send_validator):
    validator = mail_send_validator
    body = mail_send_body(message(), Tracking(), SendGridSettings(asm_group_id=42, ip_pool="marketing"))
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    broken = {k: v for k, v in body.items() if k != "from"}
    assert list(validator.iter_errors(broken)), "the schema must reject a body without 'from'"
    assert list(validator.iter_errors(dict(body, categories="lojal"))), "categories must be an array"


def test_outbox_writes_files_once_and_indexes_them(tmp_path):
    outbox = OutboxBackend(tmp_path / "2026-11-24", Tracking())
    first = outbox.send_batch([message(1), message(2)])
    assert [r.delivered and not r.duplicate for r in first] == [True, True]
    again = outbox.send_batch([message(1)])
    assert again[0].duplicate
    folder = tmp_path / "2026-11-24" / "win_back"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"m000{i}.{ext}" for i in (1, 2) for ext in ("eml", "json", "html"))
    log = (tmp_path / "2026-11-24" / "deliveries.jsonl").read_text().splitlines()
    assert [json.loads(line)["message_id"] for line in log] == ["m0001", "m0002"]
    outbox.finish()
    index = (tmp_path / "2026-11-24" / "index.html").read_text()
    assert 'href="win_back/m0001.html"' in index and "Kari Østby" in index


def test_fail_after_stops_mid_batch(tmp_path):
    backend = FailAfter(OutboxBackend(tmp_path, Tracking()), limit=3)
    backend.send_batch([message(1), message(2)])
    with pytest.raises(DeliveryError, match="after 3 messages"):
        backend.send_batch([message(3), message(4)])
    assert (tmp_path / "win_back" / "m0003.eml").exists()
    assert not (tmp_path / "win_back" / "m0004.eml").exists()
