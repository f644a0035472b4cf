"""SendGridBackend and its transport against the strict local SendGrid (and httpx.MockTransport for
faults the server cannot stage): outcomes, retries before the body left, 429 waits, the key's secrecy."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import httpx
import pytest

from lojal.config import SendGridSettings, Tracking
from lojal.delivery.base import FAILED, REJECTED, SENT, UNKNOWN
from lojal.errors import DeliveryAuthError, DeliveryConfigError
from lojal.sendgrid.backend import SendGridBackend
from lojal.sendgrid.local import LocalOptions, LocalSendGrid
from lojal.sendgrid.payload import mail_send_body

KEY = "SG.backend-test-secret-key-0123456789"


def backend_for(server: LocalSendGrid, key: str = KEY, **settings) -> SendGridBackend:
    return SendGridBackend(SendGridSettings(**settings), Tracking(), api_key=key, base_url=server.url)


def test_request_bodies_with_send_at_and_sandbox_validate_against_sendgrids_schema(message, mail_send_validator):
    send_at = datetime(2026, 11, 24, 18, 0)
    plain = mail_send_body(message(1), Tracking(), SendGridSettings(asm_group_id=7))
    scheduled = mail_send_body(message(2), Tracking(), SendGridSettings(sandbox_mode=True), send_at=send_at)
    for body in (plain, scheduled):
        errors = [f"{list(e.path)}: {e.message}" for e in mail_send_validator.iter_errors(body)]
        assert not errors, errors
    assert "send_at" not in plain and "mail_settings" not in plain
    assert scheduled["send_at"] == 1795543200  # 2026-11-24 18:00 UTC
    assert scheduled["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert list(mail_send_validator.iter_errors(dict(scheduled, send_at="18:00"))), "send_at must be an integer"


def test_messages_are_sent_once_each_with_sendgrids_message_id(message, mail_send_validator):
    with LocalSendGrid(LocalOptions(api_key=KEY)) as sg:
        backend = backend_for(sg, concurrency=4)
        results = backend.send_batch([message(i) for i in range(1, 21)])
        backend.finish()
        accepted = {a.provider_id: a for a in sg.accepted}
    assert [r.message_id for r in results] == [f"m{i:05d}" for i in range(1, 21)]
    assert all(r.outcome == SENT and r.delivered and r.accepted_at for r in results)
    assert {r.provider_id for r in results} == set(accepted)
    assert all(accepted[r.provider_id].message_ids == [r.message_id] for r in results)
    for a in accepted.values():
        assert not list(mail_send_validator.iter_errors(a.body))


def test_pooled_keep_alive_connections_and_bounded_concurrency(message):
    with LocalSendGrid(LocalOptions(latency_ms=60)) as sg:
        backend = backend_for(sg, concurrency=4)
        for _ in range(3):
            assert all(r.outcome == SENT for r in backend.send_batch([message(i) for i in range(12)]))
        backend.finish()
        stats = sg.stats()
    assert stats["accepted"] == 36
    assert 2 <= stats["max_in_flight"] <= 4   # requests overlap, never more than `concurrency`
    assert stats["connections"] <= 4          # 36 requests over at most 4 kept-alive connections


def test_a_rejected_message_carries_sendgrids_error_and_does_not_stop_the_others(message):
    bad = message(2, headers={"To": "someone-else@example.no"})  # a reserved header: SendGrid says 400
    with LocalSendGrid(LocalOptions()) as sg:
        results = backend_for(sg).send_batch([message(1), bad, message(3)])
    assert [r.outcome for r in results] == [SENT, REJECTED, SENT]
    assert "400: headers: The 'To' header is a reserved header" in results[1].error


def test_401_stops_the_run_naming_the_setting_to_fix(message):
    with LocalSendGrid(LocalOptions(api_key=KEY)) as sg:
        with pytest.raises(DeliveryAuthError) as stopped:
            backend_for(sg, key="SG.wrong-key-abcdef").send_batch([message(1), message(2)])
    assert "SENDGRID_API_KEY" in str(stopped.value) and "401" in str(stopped.value)
    assert stopped.value.results == [None, None] and sg.stats()["accepted"] == 0



def test_after_a_refused_key_the_rest_of_the_window_is_not_posted(message):
    """64 messages, 4 in flight: the first answers refuse the key, the ones still waiting never leave."""
    with LocalSendGrid(LocalOptions(api_key=KEY, latency_ms=30)) as sg:
        with pytest.raises(DeliveryAuthError) as stopped:
            backend_for(sg, key="SG.wrong-key-abcdef", concurrency=4).send_batch([message(i) for i in range(64)])
        stats = sg.stats()
    assert stopped.value.results == [None] * 64
    assert 1 <= stats["unauthorized"] <= 4 and stats["accepted"] == 0

def test_429_waits_for_the_reset_and_every_message_goes_out_once(message):
    with LocalSendGrid(LocalOptions(rate_limit=5)) as sg:
        started = time.monotonic()
        results = backend_for(sg, concurrency=4).send_batch([message(i) for i in range(12)])
        elapsed = time.monotonic() - started
        stats = sg.stats()
    assert all(r.outcome == SENT for r in results)
    assert stats["rate_limited"] > 0 and stats["accepted"] == 12 and stats["duplicates"] == 0
    assert elapsed >= 1.0  # 12 requests at 5 a second cannot all fit into the first second


def test_429_past_the_longest_wait_is_failed(message):
    reset = str(int(time.time()) + 3600)
    mock = httpx.MockTransport(lambda request: httpx.Response(
        429, headers={"X-RateLimit-Reset": reset}, json={"errors": [{"message": "too many requests"}]}))
    backend = SendGridBackend(SendGridSettings(max_rate_wait_seconds=5), Tracking(), api_key=KEY,
                              base_url="http://sendgrid.test", transport=mock, sleep=lambda s: None)
    [result] = backend.send_batch([message(1)])
    assert result.outcome == FAILED and "429" in result.error


def test_5xx_is_failed_and_a_dropped_connection_after_the_body_is_unknown(message):
    with LocalSendGrid(LocalOptions(error_rate=1.0)) as sg:
        [failed] = backend_for(sg).send_batch([message(1)])
    assert failed.outcome == FAILED and "500" in failed.error
    with LocalSendGrid(LocalOptions(drop_rate=1.0, drop_accepted_share=1.0)) as sg:
        [unknown] = backend_for(sg).send_batch([message(1)])
        assert sg.stats()["accepted"] == 1 and sg.stats()["requests"] == 1  # accepted; never resent
    assert unknown.outcome == UNKNOWN and unknown.provider_id is None


def test_a_timeout_after_the_body_was_sent_is_unknown_not_resent(message):
    with LocalSendGrid(LocalOptions(latency_ms=1500)) as sg:
        [result] = backend_for(sg, timeout_seconds=0.2).send_batch([message(1)])
        assert sg.stats()["requests"] == 1
    assert result.outcome == UNKNOWN and "ReadTimeout" in result.error


def test_errors_before_the_body_left_are_retried_with_backoff_then_failed(message):
    calls, pauses = [], []

    def flaky(request):
        calls.append(request)
        if len(calls) <= 2:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(202, headers={"X-Message-Id": "abc"})

    backend = SendGridBackend(SendGridSettings(connect_retries=3), Tracking(), api_key=KEY,
                              base_url="http://sendgrid.test", transport=httpx.MockTransport(flaky),
                              sleep=pauses.append)
    [result] = backend.send_batch([message(1)])
    assert result.outcome == SENT and result.provider_id == "abc" and len(calls) == 3
    assert len(pauses) == 2 and all(0 <= p <= 5 for p in pauses)

    never = httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)))
    backend = SendGridBackend(SendGridSettings(connect_retries=2), Tracking(), api_key=KEY,
                              base_url="http://sendgrid.test", transport=never, sleep=lambda s: None)
    [result] = backend.send_batch([message(1)])
    assert result.outcome == FAILED and "after 3 tries" in result.error


def test_a_refused_connection_to_a_real_closed_port_is_failed(message):
    with LocalSendGrid(LocalOptions()) as sg:
        url = sg.url
    [result] = SendGridBackend(SendGridSettings(connect_retries=1), Tracking(), api_key=KEY,
                               base_url=url).send_batch([message(1)])
    assert result.outcome == FAILED and "ConnectError" in result.error


def test_key_and_url_come_from_the_environment(message, monkeypatch):
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    with pytest.raises(DeliveryConfigError, match="SENDGRID_API_KEY"):
        SendGridBackend(SendGridSettings(), Tracking())
    with LocalSendGrid(LocalOptions(api_key=KEY)) as sg:
        monkeypatch.setenv("SENDGRID_API_KEY", KEY)
        monkeypatch.setenv("LOJAL_SENDGRID_URL", sg.url)
        backend = SendGridBackend(SendGridSettings(), Tracking())
        assert backend.send_batch([message(1)])[0].outcome == SENT
    monkeypatch.setenv("SENDGRID_API_KEY", KEY + "\r\nX-Injected: 1")
    with pytest.raises(DeliveryConfigError) as malformed:
        SendGridBackend(SendGridSettings(), Tracking())
    assert KEY not in str(malformed.value)


def test_the_api_key_appears_in_no_log_exception_result_or_file(message, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at DEBUG
    seen: list[str] = []
    with LocalSendGrid(LocalOptions(api_key=KEY)) as sg:
        backend = backend_for(sg)
        seen += [repr(backend), repr(backend._transport)]
        results = backend.send_batch([message(1), message(2, headers={"Subject": "x"})])
        seen += [repr(r) for r in results]
        with pytest.raises(DeliveryAuthError) as refused:
            backend_for(sg, key="SG.another-secret-key-zzz").send_batch([message(3)])
        seen += [str(refused.value), repr(refused.value)]
    for options in (LocalOptions(error_rate=1.0), LocalOptions(drop_rate=1.0), LocalOptions(latency_ms=800)):
        with LocalSendGrid(options) as sg:
            results = backend_for(sg, timeout_seconds=0.2).send_batch([message(4)])
            seen += [repr(r) for r in results]
    with LocalSendGrid(LocalOptions()) as sg:
        closed = sg.url
    seen += [repr(r) for r in backend_for_url(closed).send_batch([message(5)])]
    backend.finish()
    files = [p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file()]
    everything = "\n".join(seen + [caplog.text] + files)
    assert "POST" in caplog.text or "HTTP Request" in caplog.text  # the loggers did log the requests
    assert KEY not in everything and "another-secret-key" not in everything


def backend_for_url(url: str) -> SendGridBackend:
    return SendGridBackend(SendGridSettings(connect_retries=0), Tracking(), api_key=KEY, base_url=url)


@pytest.mark.slow
def test_the_key_can_come_from_a_prefect_secret_block(message, prefect_harness, monkeypatch):
    from prefect.blocks.system import Secret

    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    Secret(value=KEY).save("lojal-test-sendgrid-key", overwrite=True)
    with LocalSendGrid(LocalOptions(api_key=KEY)) as sg:
        backend = SendGridBackend(SendGridSettings(api_key_secret_block="lojal-test-sendgrid-key"), Tracking(),
                                  base_url=sg.url)
        assert backend.send_batch([message(1)])[0].outcome == SENT
        backend.finish()
    with pytest.raises(DeliveryConfigError, match="lojal-no-such-block"):
        SendGridBackend(SendGridSettings(api_key_secret_block="lojal-no-such-block"), Tracking())


def test_under_faults_every_outcome_matches_what_the_server_did(message):
    """5% 500s, 3% connections dropped after the body was read (half of them accepted), a rate
    limit the pool runs into: each message's outcome agrees with the local SendGrid's own count."""
    options = LocalOptions(error_rate=0.05, drop_rate=0.03, drop_accepted_share=0.5, rate_limit=300, seed=11)
    with LocalSendGrid(options) as sg:
        backend = backend_for(sg, concurrency=8)
        results = [r for start in range(0, 1000, 100)
                   for r in backend.send_batch([message(i) for i in range(start, start + 100)])]
        backend.finish()
        stats = sg.stats()
        accepted = sg.accepted_message_ids()
    by_outcome = {o: [r for r in results if r.outcome == o] for o in (SENT, FAILED, UNKNOWN, REJECTED)}
    assert stats["rate_limited"] > 0 and stats["duplicates"] == 0 and not by_outcome[REJECTED]
    assert len(by_outcome[FAILED]) == stats["server_errors"] > 0
    assert len(by_outcome[UNKNOWN]) == stats["dropped"] > 0
    assert len(by_outcome[SENT]) == stats["accepted"] - stats["dropped_accepted"]
    assert all(accepted[r.message_id] == 1 for r in by_outcome[SENT])       # sent = accepted, once
    assert not any(accepted[r.message_id] for r in by_outcome[FAILED])      # failed = never accepted
    assert sum(accepted[r.message_id] for r in by_outcome[UNKNOWN]) == stats["dropped_accepted"]
