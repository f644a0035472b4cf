"""Signed unsubscribe tokens and the /unsubscribe/{token} endpoint of the webhook app."""

from __future__ import annotations

import httpx
import pytest

from lojal.errors import TrackingConfigError, UnsubscribeTokenError
from lojal.sendgrid.app import WebhookApp
from lojal.store import connect
from lojal.store.db import init_schema
from lojal.suppressions import apply_events, list_suppressions
from lojal.secrets import Secrets, load_secrets
from lojal.tracking.tokens import make_unsubscribe_token, unsubscribe_url, verify_unsubscribe_token
from lojal.tracking.unsubscribe import UnsubscribeEndpoint

SHOP = Secrets(b"s" * 40)
OTHER_SHOP = Secrets(b"o" * 40)
ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def store(database_url):
    engine = connect(database_url)
    init_schema(engine)
    yield engine
    engine.dispose()


def client(engine) -> httpx.AsyncClient:
    app = WebhookApp(engine, None, unsubscribe=UnsubscribeEndpoint(engine, SHOP, "Nordlys Hjem"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def emails(engine) -> list[str]:
    return sorted(r["email"] for r in list_suppressions(engine))


def test_a_token_round_trips_and_names_message_recipient_and_locale():
    token = make_unsubscribe_token(SHOP, "m00001", "Kari@Example.no", "nb")
    request = verify_unsubscribe_token(token, SHOP)
    assert (request.message_id, request.email, request.locale) == ("m00001", "Kari@Example.no", "nb")
    assert "{token}" not in unsubscribe_url("https://x.example/u/{token}", SHOP, "m1", "a@b.no")


def test_every_altered_character_and_a_foreign_secret_are_refused():
    token = make_unsubscribe_token(SHOP, "m00001", "kari@example.no", "nb")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, char in enumerate(token):
        if char == ".":
            continue
        swapped = alphabet[(alphabet.index(char) + 1) % len(alphabet)]
        with pytest.raises(UnsubscribeTokenError):
            verify_unsubscribe_token(token[:i] + swapped + token[i + 1:], SHOP)
    with pytest.raises(UnsubscribeTokenError):
        verify_unsubscribe_token(token, OTHER_SHOP)
    for junk in ("", "m00001", "a.b.c", token + "=", "é." + token, "x" * 5000):
        with pytest.raises(UnsubscribeTokenError):
            verify_unsubscribe_token(junk, SHOP)


def test_the_old_unkeyed_message_id_is_not_a_token():
    with pytest.raises(UnsubscribeTokenError):
        verify_unsubscribe_token("3f1c9e0a2b7d4e5f8a9b0c1d2e3f4a5b", SHOP)


def test_secrets_come_from_the_environment_are_long_and_rotate(tmp_path):
    from lojal.paths import Paths

    paths = Paths(tmp_path, tmp_path / "state")
    with pytest.raises(TrackingConfigError, match="LOJAL_SECRET is shorter than 32"):
        load_secrets(paths, environ={"LOJAL_SECRET": "short"})
    old = load_secrets(paths, environ={"LOJAL_SECRET": "a" * 32})
    token = make_unsubscribe_token(old, "m1", "a@b.no")
    rotated = load_secrets(paths, environ={"LOJAL_SECRET": "b" * 32, "LOJAL_SECRET_PREVIOUS": "a" * 32})
    assert verify_unsubscribe_token(token, rotated).message_id == "m1"


@pytest.mark.anyio
async def test_one_click_post_suppresses_exactly_that_recipient(store):
    token = make_unsubscribe_token(SHOP, "m00001", "Kari@Example.NO", "nb")
    async with client(store) as http:
        answer = await http.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert answer.status_code == 200
    assert emails(store) == ["kari@example.no"]
    row = list_suppressions(store)[0]
    assert (row["reason"], row["source"], row["event_id"]) == ("unsubscribe", "unsubscribe-link", "link:m00001")


@pytest.mark.parametrize("forge", ["altered", "foreign", "unsigned"])
@pytest.mark.anyio
async def test_forged_altered_or_foreign_tokens_change_nothing_and_get_4xx(store, forge):
    good = make_unsubscribe_token(SHOP, "m00001", "kari@example.no", "nb")
    token = {"altered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
             "foreign": make_unsubscribe_token(OTHER_SHOP, "m00001", "ola@example.no", "nb"),
             "unsigned": "m00001"}[forge]
    async with client(store) as http:
        for method in ("GET", "POST"):
            answer = await http.request(method, f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
                                        headers=ONE_CLICK)
            assert 400 <= answer.status_code < 500
    assert emails(store) == []


@pytest.mark.anyio
async def test_get_asks_in_the_recipients_language_and_the_page_can_undo(store):
    token = make_unsubscribe_token(SHOP, "m00007", "per@example.se", "sv")
    async with client(store) as http:
        asked = await http.get(f"/unsubscribe/{token}")
        assert asked.status_code == 200 and "Avregistrera mig" in asked.text and 'lang="sv"' in asked.text
        assert emails(store) == []  # a GET (a link scanner) never unsubscribes
        done = await http.post(f"/unsubscribe/{token}", data={"action": "unsubscribe"})
        assert "får inte längre" in done.text and emails(store) == ["per@example.se"]
        again = await http.get(f"/unsubscribe/{token}")
        assert 'data-status="unsubscribed"' in again.text and "Ångra" in again.text
        undone = await http.post(f"/unsubscribe/{token}", data={"action": "undo"})
        assert 'data-status="resubscribed"' in undone.text
    assert emails(store) == []


@pytest.mark.anyio
async def test_undo_never_lifts_a_bounce(store):
    from lojal.store.suppressions import suppress

    suppress(store, "ola@example.no", "bounce", "sendgrid-event")
    token = make_unsubscribe_token(SHOP, "m2", "ola@example.no", "da")
    async with client(store) as http:
        page = await http.get(f"/unsubscribe/{token}")
        assert "Afmeld mig" in page.text
        await http.post(f"/unsubscribe/{token}", data={"action": "undo"})
    assert [r["reason"] for r in list_suppressions(store)] == ["bounce"]


@pytest.mark.anyio
async def test_customer_data_in_the_token_is_escaped(store):
    token = make_unsubscribe_token(SHOP, "m3", "<script>@x.no", "en")
    async with client(store) as http:
        page = await http.get(f"/unsubscribe/{token}")
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
