"""Shared fixtures: a copy of the shipped project in a temp folder, SQLite and PostgreSQL
stores, and one Prefect test harness per session (it takes seconds to start)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import uuid
from datetime import date
from pathlib import Path

import sys

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # tests import their helpers (headless.py); importlib mode
SHARED = REPO.parent / "shared"
POSTGRES_URL = os.environ.get("LOJAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RUN_DATE = date(2026, 11, 24)
# The shop's secret (holdout groups, A/B arms, offer codes): runs need one; tests use a fixed test value.
os.environ.setdefault("LOJAL_SECRET", "lojal-test-suite-secret-not-for-production")


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Rich wraps CLI errors to the terminal width (80 under CliRunner), which would split the
    words tests look for across box lines depending on how long the temp path is."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture(scope="session")
def prefect_harness():
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _postgres_admin():
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # unreachable server, missing driver
        engine.dispose()
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({type(exc).__name__}); "
                    "set LOJAL_TEST_POSTGRES_URL to run the PostgreSQL tests")
    return engine


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin = _postgres_admin()
    name = f"lojal_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped marketer files, with state in tmp and the default SQLite store."""
    root = tmp_path / "project"
    for folder in ("config", "segments", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    monkeypatch.setenv("LOJAL_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("LOJAL_DATABASE_URL", raising=False)
    return root


@pytest.fixture
def mail_send_validator():
    """A validator for SendGrid's published Mail Send request schema (with its custom_args quirk)."""
    from jsonschema import Draft202012Validator

    spec_file = SHARED / "sendgrid-oai" / "tsg_mail_v3.json"
    if not spec_file.exists():
        pytest.skip(f"{spec_file} not present (it ships in ../shared beside the project, not in a clone)")
    spec = json.loads(spec_file.read_text())
    schema = copy.deepcopy(spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"])
    # Known quirk of the published file: message-level custom_args is an object of strings in the live API.
    schema["properties"]["custom_args"] = {"type": "object", "additionalProperties": {"type": "string"}}
    schema["components"] = spec["components"]
    return Draft202012Validator(_resolve_refs(schema, schema))


def _resolve_refs(node, root):
    if isinstance(node, dict):
        if "$ref" in node and node["$ref"].startswith("#/components/"):
            target = root
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            return _resolve_refs(target, root)
        return {k: _resolve_refs(v, root) for k, v in node.items() if k != "components"}
    if isinstance(node, list):
        return [_resolve_refs(v, root) for v in node]
    return node


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under `--dist loadgroup` (make test) each file runs on one worker, as with loadfile, so its module
    fixtures (nightly runs, browsers) are built once; a test marked `xdist_group` names its own group, which
    lets the big tests of one file run side by side on both workers."""
    if config.getoption("dist", "no") != "loadgroup":
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
