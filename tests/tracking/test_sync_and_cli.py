"""`lojal suppressions sync` against the strict local SendGrid, and the suppression CLI commands."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from lojal.cli import app
from lojal.errors import DeliveryAuthError
from lojal.sendgrid.local import LocalOptions, LocalSendGrid
from lojal.store import connect
from lojal.store.db import init_schema
from lojal.suppressions import list_suppressions
from lojal.tracking.sync import client_for, sync

KEY = "SG.test-key-for-suppressions"
runner = CliRunner()


@pytest.fixture
def store(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'store.db'}")
    init_schema(engine)
    yield engine
    engine.dispose()


def test_sync_reads_every_list_and_group_page_by_page(store):
    with LocalSendGrid(LocalOptions(api_key=KEY)) as sg:
        for i in range(1203):  # three pages of bounces
            sg.add_suppression("bounces", f"b{i}@example.no", 1700000000 + i, reason="550 no such user", status="5.1.1")
        sg.add_suppression("blocks", "blocked@example.no", 1700000000)
        sg.add_suppression("spam_reports", "Angry@Example.no", 1700000000)
        sg.add_suppression("invalid_emails", "typo@exmaple.no", 1700000000, reason="Mail domain invalid")
        sg.add_suppression("unsubscribes", "gone@example.no", 1700000000)
        sg.add_suppression("unsubscribes", "b0@example.no", 1700000000)  # already a bounce: keeps that reason
        sg.add_suppression("group", "weekly@example.no", group_id=42)
        with client_for(sg.url, KEY) as client:
            result = sync(store, client)
            assert sync(store, client).added == 0  # a second sync adds nothing
        with client_for(sg.url, "SG.wrong") as client, pytest.raises(DeliveryAuthError, match="Suppressions"):
            sync(store, client)
    assert result.read == {"bounces": 1203, "blocks": 1, "spam_reports": 1, "invalid_emails": 1, "unsubscribes": 2,
                           "group 42": 1}
    assert result.added == 1208
    rows = {r["email"]: r for r in list_suppressions(store)}
    assert rows["angry@example.no"]["reason"] == "spam_report"
    assert rows["b0@example.no"]["reason"] == "bounce" and rows["b0@example.no"]["source"] == "sendgrid-bounces"
    assert (rows["weekly@example.no"]["reason"], rows["weekly@example.no"]["asm_group_id"]) == ("group_unsubscribe", 42)
    assert rows["typo@exmaple.no"]["reason"] == "invalid_email"


def test_the_local_sendgrid_refuses_bad_pages_and_keys():
    with LocalSendGrid(LocalOptions(api_key=KEY)) as sg, httpx.Client(base_url=sg.url) as client:
        auth = {"Authorization": f"Bearer {KEY}"}
        assert client.get("/v3/suppression/bounces", headers=auth, params={"limit": 501}).status_code == 400
        assert client.get("/v3/suppression/bounces").status_code == 401
        assert client.get("/v3/suppression/nonsense", headers=auth).status_code == 404


def test_import_list_and_remove_from_the_command_line(project, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("email,reason\nkari@example.no,unsubscribe\nnope,bounce\n")
    result = runner.invoke(app, ["import", "suppressions", str(bad), "--project", str(project)])
    assert result.exit_code != 0
    assert f"{bad}:3:1: email 'nope'" in str(result.exception) + result.output
    good = tmp_path / "good.csv"
    good.write_text("email,reason,created_at\nKari@Example.no,unsubscribe,2025-03-01T10:00:00Z\nola@example.no,bounce,\n")
    result = runner.invoke(app, ["import", "suppressions", str(good), "--project", str(project)])
    assert result.exit_code == 0, result.output
    assert "2 suppressed" in result.output
    listed = runner.invoke(app, ["suppressions", "list", "--json", "--project", str(project)])
    lines = [json.loads(line) for line in listed.output.splitlines()]
    assert {line["email"] for line in lines} == {"kari@example.no", "ola@example.no"}
    assert runner.invoke(app, ["suppressions", "remove", "KARI@example.no", "--project", str(project)]).exit_code == 0
    assert runner.invoke(app, ["suppressions", "remove", "kari@example.no", "--project", str(project)]).exit_code == 1
    listed = runner.invoke(app, ["suppressions", "list", "--json", "--project", str(project)])
    assert [json.loads(line)["email"] for line in listed.output.splitlines()] == ["ola@example.no"]
