"""Overlapping runs of one store: the second `lojal run` stops at once, naming the running one,
and nothing is sent twice. Real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from lojal import ledger
from lojal.paths import Paths
from lojal.runlock import RunLock
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect

D = date(2026, 11, 24)
LOJAL = str(Path(sys.executable).with_name("lojal"))
pytestmark = pytest.mark.usefixtures("prefect_harness")


def env_for(project: Path, database_url: str) -> dict:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, LOJAL_DATABASE_URL=database_url, PREFECT_API_URL=PREFECT_API_URL.value(),
               COLUMNS="400", LOJAL_HOME=os.environ["LOJAL_HOME"])
    return env


def start_run(project: Path, database_url: str) -> subprocess.Popen:
    return subprocess.Popen([LOJAL, "run", "--project", str(project), "--date", D.isoformat()],
                            env=env_for(project, database_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_second_run_stops_at_once_naming_the_first(project, database_url):
    engine = connect(database_url)
    write_sample_shop(engine, generate_shop(200, seed=3, until=D), replace=False)
    with RunLock(engine, D) as held:  # this test process is "the running one"
        started = time.monotonic()
        second = start_run(project, database_url)
        out, err = second.communicate(timeout=180)
        took = time.monotonic() - started
    assert second.returncode == 1, out + err
    assert "another run is using this store" in err and f"pid {os.getpid()} " in err, err
    assert held.who.split(" since ")[0] in err
    assert ledger.states(engine).empty, "the second run planned or sent something"
    assert took < 120
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_runs_started_together_on_postgresql_never_double_send(project, postgres_url):
    engine = connect(postgres_url)
    write_sample_shop(engine, generate_shop(900, seed=7, until=D), replace=False)
    runs = [start_run(project, postgres_url), start_run(project, postgres_url)]
    outputs = [r.communicate(timeout=600) for r in runs]
    codes = sorted(r.returncode for r in runs)
    assert codes == [0, 1], outputs
    winner, loser = (runs[0], runs[1]) if runs[0].returncode == 0 else (runs[1], runs[0])
    loser_err = outputs[runs.index(loser)][1]
    assert "another run is using this store" in loser_err and f"pid {winner.pid} " in loser_err, loser_err

    rows = ledger.states(engine)
    rows = rows[rows["state"] != "held_out"]  # holdout groups: recorded, never sent
    assert len(rows) > 50 and (rows["state"] == "sent").all()
    logs = (Paths.resolve(project).outbox_dir(D)).glob("deliveries.jsonl")
    ids = [json.loads(line)["message_id"] for log in logs for line in log.read_text().splitlines()]
    assert sorted(ids) == sorted(rows["message_id"]), "every message delivered exactly once"
    engine.dispose()
