"""The one e-mail address rule (lojal.addresses) where it is used: the audience gate, the
suppression list, and the one header rule (lojal.delivery.message) for names and subjects."""

from __future__ import annotations

import email
import json
import unicodedata
from datetime import date, datetime
from email.header import decode_header, make_header

import pandas as pd
import pytest
from sqlalchemy import select

from lojal.addresses import mailbox_key, normalize, parse, sendable, suppression_key
from lojal.audience import INVALID_EMAIL, NEEDS_SMTPUTF8, SAME_MAILBOX, SUPPRESSED, exclusion_reasons
from lojal.config import Tracking
from lojal.delivery.message import OutgoingMessage
from lojal.errors import AddressError, HeaderInjectionError
from lojal.sendgrid.payload import mail_send_body
from lojal.store import connect, init_schema, load_shop_data, schema
from lojal.store.shopdata import ShopData
from lojal.store.suppressions import suppress

RUN = date(2026, 11, 24)


def test_normal_form_and_mailbox_key():
    assert normalize("  Ase@Example.COM ") == "Ase@example.com"
    assert mailbox_key("Ase@Example.COM") == mailbox_key("ase@example.com") == "ase@example.com"
    assert normalize("ase@BÜCHER.example") == "ase@xn--bcher-kva.example"  # IDN: sent in ASCII
    assert mailbox_key("ase@xn--bcher-kva.example") == mailbox_key("ase@bücher.example")
    decomposed = unicodedata.normalize("NFD", "åse@bücher.example")
    assert parse(decomposed) == parse("åse@bücher.example")  # one Unicode normalization (NFC)
    assert parse("pelé@example.com").smtputf8 and not parse("pele@example.com").smtputf8
    assert mailbox_key("not an address") is None and mailbox_key("a..b@example.com") is None


def test_non_ascii_local_part_is_refused_for_sending_with_the_reason():
    with pytest.raises(AddressError, match="non-ASCII characters before the @, which needs SMTPUTF8"):
        sendable("pelé@example.com")
    assert sendable("pele@BÜCHER.example").email == "pele@xn--bcher-kva.example"


def _shop(emails: list[str], suppressed: frozenset[str] = frozenset(), consent=None) -> ShopData:
    ids = list(range(1, len(emails) + 1))
    customers = pd.DataFrame({
        "customer_id": ids, "email": emails, "first_name": "X", "locale": "en", "country": "GB",
        "time_zone": "Europe/London", "birthday": None, "created_at": datetime(2025, 1, 1),
        "consent_email": consent or [True] * len(ids), "consent_at": datetime(2025, 1, 1), "consent_source": "checkout"})
    products = pd.DataFrame({"sku": ["A"], "title": "A", "category": "C", "price": 10.0, "currency": "NOK",
                             "image_url": None, "product_url": None, "in_stock": True})
    orders = pd.DataFrame(columns=["order_id", "customer_id", "placed_at", "currency"])
    orders["placed_at"] = pd.to_datetime(orders["placed_at"])
    lines = pd.DataFrame(columns=["order_id", "line_no", "sku", "quantity", "unit_price"])
    return ShopData.from_frames(RUN, customers, products, orders, lines, suppressed)


def _listed(reasons: pd.Series) -> list:
    return [r if isinstance(r, str) else None for r in reasons]


def test_suppressions_match_however_the_address_is_written():
    emails = ["ase@example.com", "bjorn@example.se", "soren@bücher.example", "eve@bücher.example", "ok@example.com"]
    suppressed = frozenset({
        "  ase@example.com  ",                                        # surrounding spaces
        "BJORN@EXAMPLE.SE",                                           # another case
        "soren@xn--bcher-kva.example",                               # punycode domain
        unicodedata.normalize("NFD", "EVE@BÜCHER.EXAMPLE"),          # another Unicode normalization
    })
    reasons = _listed(exclusion_reasons(_shop(emails, suppressed)))
    assert reasons == [SUPPRESSED, SUPPRESSED, SUPPRESSED, SUPPRESSED, None]


def test_same_mailbox_is_mailed_once_and_smtputf8_excluded_with_reason():
    reasons = _listed(exclusion_reasons(_shop(["Ase@Example.com", "ase@example.com", "pelé@example.com", "x@@y", "p@x.no"])))
    assert reasons == [None, SAME_MAILBOX, NEEDS_SMTPUTF8, INVALID_EMAIL, None]
    # The lower id keeps the mailbox only among those who may be mailed at all.
    reasons = _listed(exclusion_reasons(_shop(["Ase@Example.com", "ase@example.com"], consent=[False, True])))
    assert reasons[1] is None


def test_suppression_is_stored_under_its_mailbox_key(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    init_schema(engine)
    assert suppress(engine, "  Ase@BÜCHER.example ", "unsubscribe") == "ase@xn--bcher-kva.example"
    suppress(engine, "ase@xn--bcher-kva.example", "bounce")  # the same mailbox: stored once
    with engine.connect() as conn:
        assert conn.execute(select(schema.suppressions.c.email)).scalars().all() == ["ase@xn--bcher-kva.example"]
    assert load_shop_data(engine, RUN).suppressed_emails == frozenset({"ase@xn--bcher-kva.example"})
    assert suppression_key("Not An Address ") == "not an address"


def _message(**overrides) -> OutgoingMessage:
    fields = dict(message_id="m1", campaign_id="c", customer_id=1, to_email="ase@example.com", to_name="Åse",
                  from_email="shop@example.com", from_name="Shop", subject="Hei", html="<p>h</p>", text="h")
    return OutgoingMessage(**{**fields, **overrides})


def test_a_huge_name_never_makes_a_header_line_longer_than_rfc_5322_allows():
    message = _message(to_name="X" * 10_000, subject="Tilbud " * 400)
    eml = message.to_eml(datetime(2026, 11, 24))
    header_block = eml.split("\r\n\r\n", 1)[0]
    assert max(len(line) for line in header_block.split("\r\n")) <= 78 < 998
    parsed = email.message_from_string(eml)
    to = str(make_header(decode_header(parsed["To"])))
    assert to.endswith("\u2026 <ase@example.com>") and len(to) < 200  # names are bounded (128 characters)


def test_c1_controls_and_bidi_overrides_never_reach_headers():
    message = _message(to_name="Eve\u202egnp.exe\x85\x9b", subject="Hei \u2066Eve\u2069\u200f, tilbud\x9d")
    assert message.to_name == "Evegnp.exe" and message.subject == "Hei Eve, tilbud"
    parsed = email.message_from_string(message.to_eml(datetime(2026, 11, 24)))
    for header in ("To", "Subject"):
        text = str(make_header(decode_header(parsed[header])))
        assert not any(0x80 <= ord(ch) <= 0x9f or ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
                       for ch in text), text
    body = json.dumps(mail_send_body(message, Tracking()))
    assert "\\u202e" not in body and "\\u0085" not in body
    with pytest.raises(HeaderInjectionError):
        _message(to_name="Eve\r\nBcc: victim@example.com")
    with pytest.raises(HeaderInjectionError):
        _message(to_email="pelé@example.com")
