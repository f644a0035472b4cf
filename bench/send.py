"""Benchmark: sending through SendGrid's v3 Mail Send (the strict local SendGrid, run as its own
process) with Lojal's pooled keep-alive transport and with the official `sendgrid` client's
default (one connection per request, one thread), in the same run; then Event Webhook ingestion
into PostgreSQL (`lojal webhook serve` as its own process) against one transaction per event.

    .venv/bin/python bench/send.py [--messages 100000] [--naive-messages 20000] [--path-messages 20000]
                                   [--window-size 16 --window-size 64] [--events 100000] [--json]

The whole delivery path (`pipeline.deliver`: the ledger claimed and settled per window) runs once
per `--window-size` (`delivery.window_size`, default 64) on each store, with the CPU per message of
the run's process, the local SendGrid and (on PostgreSQL) the database server.

Every message is checked afterwards by the local SendGrid's own count: accepted exactly once,
0 duplicates. Every event is checked in PostgreSQL: all stored, none twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from proc_cpu import TICKS, cpu_ticks_by_pid, process_kind

PROJECT = Path(__file__).resolve().parents[1]
LOJAL = str(Path(sys.executable).parent / "lojal")
KEY = "SG.bench-key-0123456789"
POSTGRES_URL = os.environ.get("LOJAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def start(args: list[str], env: dict | None = None, pattern: str | None = None):
    proc = subprocess.Popen([LOJAL, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    match = None
    if pattern:
        line = proc.stdout.readline()
        match = re.search(pattern, line)
        if not match:
            proc.kill()
            raise SystemExit(f"could not start {args[0]}: {line}{proc.stdout.read()}")
    return proc, match


def messages(count: int, html_kb: int, offset: int = 0):
    from lojal.delivery.message import OutgoingMessage

    html = "<!doctype html><html><body>" + ("<p>Hei Kari, her er tre ting vi tror du vil like.</p>" * 
                                             (html_kb * 1024 // 54)) + "</body></html>"
    text = "Hei Kari, her er tre ting vi tror du vil like.\n" * 20
    for i in range(offset, offset + count):
        mid = f"bench-{i:07d}"
        yield OutgoingMessage(
            message_id=mid, campaign_id="win_back", customer_id=i, to_email=f"kunde{i}@example.no",
            to_name="Kari Østby", from_email="hei@nordlys.example", from_name="Nordlys Hjem",
            subject="Vi savner deg, Kari", html=html, text=text, categories=("lojal", "lojal-win_back"),
            custom_args={"lojal_message_id": mid, "lojal_campaign": "win_back"},
            headers={"List-Unsubscribe": "<https://nordlys.example/u/t>",
                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})


def pooled(url: str, count: int, html_kb: int, concurrency: int, window: int) -> dict:
    from lojal.config import SendGridSettings, Tracking
    from lojal.sendgrid.backend import SendGridBackend

    backend = SendGridBackend(SendGridSettings(concurrency=concurrency), Tracking(), api_key=KEY, base_url=url)
    outcomes: dict[str, int] = {}
    prepared = list(messages(count, html_kb))  # built by the pipeline before delivery: not timed
    batch, started, cpu = [], time.perf_counter(), time.process_time()
    for message in prepared:
        batch.append(message)
        if len(batch) == window:
            _tally(outcomes, backend.send_batch(batch))
            batch = []
    if batch:
        _tally(outcomes, backend.send_batch(batch))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    backend.finish()
    return {"messages": count, "seconds": seconds, "per_s": count / seconds, "outcomes": outcomes,
            "client_cpu_ms_per_message": cpu / count * 1000,
            "concurrency": concurrency, "window": window}


def _tally(outcomes: dict, results) -> None:
    for result in results:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1


def official(url: str, count: int, html_kb: int, offset: int) -> dict:
    """SendGrid's own client as its README shows it: one client, `client.send(mail)` in a loop."""
    from sendgrid import SendGridAPIClient

    from lojal.config import Tracking
    from lojal.sendgrid.payload import mail_send_body

    client = SendGridAPIClient(KEY, host=url)
    prepared = list(messages(count, html_kb, offset))
    accepted, started, cpu = 0, time.perf_counter(), time.process_time()
    for message in prepared:
        response = client.client.mail.send.post(request_body=mail_send_body(message, Tracking()))
        accepted += response.status_code == 202
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"messages": count, "seconds": seconds, "per_s": count / seconds, "accepted": accepted,
            "client_cpu_ms_per_message": cpu / count * 1000}


def whole_path(url: str, store_url: str, count: int, html_kb: int, concurrency: int, offset: int,
               window_size: int) -> dict:
    """`lojal.pipeline.deliver` as a run calls it: every window of `window_size` messages committed
    `sending` in the ledger before its requests leave, each message settled after (claim/settle)."""
    from datetime import date

    import pandas as pd

    from lojal import ledger
    from lojal.config import Delivery, SendGridSettings, Tracking
    from lojal.pipeline import deliver
    from lojal.sendgrid.backend import SendGridBackend
    from lojal.store import connect
    from lojal.store.db import init_schema

    engine = connect(store_url)
    init_schema(engine)
    night = date(2026, 11, 24)
    ids = range(offset, offset + count)
    rows = ledger.plan(engine, "win_back", night, pd.DataFrame({"customer_id": list(ids), "occasion_key": "once"}))
    ledger.refresh_statistics(engine)  # as a night does after recording (else the first run meets stale statistics)
    prepared = [dataclasses.replace(m, message_id=mid, custom_args={**m.custom_args, "lojal_message_id": mid})
                for m, mid in zip(messages(count, html_kb, offset), rows["message_id"])]
    settings = Delivery(backend="sendgrid", window_size=window_size, sendgrid=SendGridSettings(concurrency=concurrency))
    backend = SendGridBackend(settings.sendgrid, Tracking(), api_key=KEY, base_url=url)
    started, cpu, database = time.perf_counter(), time.process_time(), postgres_cpu_seconds()
    outcome = deliver(engine, backend, prepared, night, settings)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    database = postgres_cpu_seconds() - database
    backend.finish()
    sent = ledger.state_counts(engine)
    engine.dispose()
    return {"messages": count, "window_size": window_size, "seconds": seconds, "per_s": count / seconds,
            "ledger": dict(sent), "delivered": outcome.delivered, "client_cpu_ms_per_message": cpu / count * 1000,
            "database_cpu_ms_per_message": database / count * 1000 if store_url.startswith("postgresql") else None}


def postgres_cpu_seconds() -> float:
    """User + system CPU seconds of every PostgreSQL process now (its server for all databases)."""
    return sum(ticks for pid, ticks in cpu_ticks_by_pid().items() if process_kind(pid) == "PostgreSQL") / TICKS


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of another process (Linux /proc)."""
    return cpu_ticks_by_pid().get(pid, 0) / TICKS


def bench_send(args) -> dict:
    proc, match = start(["sendgrid-local", "--port", "0", "--api-key", KEY, "--no-keep-bodies"],
                        pattern=r"listening on (http://\S+)")
    url = match.group(1)
    try:
        server_cpu = process_cpu_seconds(proc.pid)
        ours = pooled(url, args.messages, args.html_kb, args.concurrency, args.window)
        ours["server_cpu_ms_per_message"], server_cpu = _cpu_since(proc.pid, server_cpu, args.messages)
        naive = official(url, args.naive_messages, args.html_kb, offset=args.messages)
        naive["server_cpu_ms_per_message"], server_cpu = _cpu_since(proc.pid, server_cpu, args.naive_messages)
        paths, offset = {}, args.messages + args.naive_messages
        for (name, store_url), size in itertools.product(_stores(args), args.window_size):
            key = f"{name}, windows of {size}"
            paths[key] = whole_path(url, store_url, args.path_messages, args.html_kb, args.concurrency, offset, size)
            paths[key]["server_cpu_ms_per_message"], server_cpu = _cpu_since(proc.pid, server_cpu, args.path_messages)
            offset += args.path_messages
        stats = httpx.get(f"{url}/_local/stats").json()
    finally:
        proc.terminate()
        proc.wait(10)
        for _, store_url in _stores(args):
            _drop_store(store_url)
    expected = args.messages + args.naive_messages + args.path_messages * len(paths)
    return {"pooled": ours, "official_client": naive, "ratio": ours["per_s"] / naive["per_s"],
            "whole_delivery_path": paths,
            "local_sendgrid": {k: stats[k] for k in ("accepted", "requests", "duplicates", "rejected",
                                                     "distinct_message_ids", "connections", "max_in_flight")},
            "exactly_once": stats["accepted"] == stats["distinct_message_ids"] == expected and stats["duplicates"] == 0}


def _stores(args) -> list[tuple[str, str]]:
    """The ledger stores the whole-path figure runs on: SQLite in a temporary folder, and a fresh
    PostgreSQL database when the server answers."""
    if not args.path_messages:
        return []
    if not hasattr(args, "_stores"):
        import tempfile

        args._stores = [("sqlite", f"sqlite:///{tempfile.mkdtemp(prefix='lojal-bench-')}/store.db")]
        if postgres_reachable():
            args._stores.append(("postgresql", _new_postgres_database()))
    return args._stores


def _new_postgres_database() -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"lojal_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_store(store_url: str) -> None:
    from sqlalchemy import create_engine, text

    if store_url.startswith("sqlite:///"):
        import shutil

        shutil.rmtree(Path(store_url.removeprefix("sqlite:///")).parent, ignore_errors=True)
        return
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{store_url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def _cpu_since(pid: int, before: float, count: int) -> tuple[float, float]:
    now = process_cpu_seconds(pid)
    return (now - before) / max(count, 1) * 1000, now


def bench_webhook(args) -> dict:
    from sqlalchemy import create_engine, func, select, text

    from lojal.sendgrid.events import parse_batch, store_events
    from lojal.sendgrid.local import DEFAULT_EVENT_RATES, message_events
    from lojal.sendgrid.webhook import new_private_key, public_key_text, signed_headers
    from lojal.store import connect
    from lojal.store.db import init_schema
    from lojal.store.schema import delivery_events
    import random

    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"lojal_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = connect(url)
    init_schema(engine)
    key = new_private_key()
    rng = random.Random(1)
    events: list[dict] = []
    i = 0
    while len(events) < args.events:
        events += message_events(rng, DEFAULT_EVENT_RATES, f"prov{i}", f"kunde{i}@example.no",
                                 {"lojal_message_id": f"bench-{i:07d}"}, ["lojal"], time.time())
        i += 1
    events = events[:args.events]
    batches = [json.dumps(events[s:s + args.batch], separators=(",", ":")).encode()
               for s in range(0, len(events), args.batch)]
    port = _free_port()
    proc, _ = start(["webhook", "serve", "--port", str(port), "--project", str(PROJECT)],
                    env={"LOJAL_DATABASE_URL": url, "LOJAL_SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_text(key)})
    endpoint = f"http://127.0.0.1:{port}/sendgrid/events"
    try:
        _wait_up(endpoint.replace("/sendgrid/events", "/healthz"), proc)
        with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=args.posters)) as client:
            def post(body: bytes) -> int:
                while True:  # as SendGrid does: post again until 2xx
                    if client.post(endpoint, content=body, headers=signed_headers(key, body)).status_code < 300:
                        return 1
            started = time.perf_counter()
            with ThreadPoolExecutor(args.posters) as pool:
                list(pool.map(post, batches))
            seconds = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(10)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(delivery_events)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(delivery_events.c.sg_event_id)))).scalar_one()
    # The naive way: one transaction per event, in process (no HTTP), on a sample.
    sample = parse_batch(json.dumps([dict(e, sg_event_id=f"naive-{n}") for n, e in
                                     enumerate(events[:args.naive_events])]).encode())
    naive_started = time.perf_counter()
    for event in sample:
        store_events(engine, [event])
    naive_seconds = time.perf_counter() - naive_started
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    per_s = len(events) / seconds
    naive_per_s = len(sample) / naive_seconds
    return {"events": len(events), "batch": args.batch, "posters": args.posters, "seconds": seconds,
            "per_s": per_s, "stored": stored, "distinct": distinct, "nothing_lost": stored == distinct == len(events),
            "naive_one_transaction_per_event": {"events": len(sample), "per_s": naive_per_s},
            "ratio": per_s / naive_per_s}


def postgres_reachable() -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the webhook receiver exited: {proc.stdout.read()}")
        try:
            httpx.get(url)
            return
        except httpx.ConnectError:
            time.sleep(0.1)
    raise SystemExit("the webhook receiver did not start within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages through the pooled transport")
    parser.add_argument("--naive-messages", type=int, default=20_000,
                        help="messages through the official client (at most --messages)")
    parser.add_argument("--path-messages", type=int, default=20_000,
                        help="messages through the whole delivery path (ledger claim/settle), per store (0: skip)")
    parser.add_argument("--html-kb", type=int, default=16, help="size of each message's HTML part")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--window", type=int, default=256, help="messages per send_batch call (pooled transport)")
    parser.add_argument("--window-size", type=int, action="append",
                        help="delivery.window_size of the whole delivery path (repeat to compare; default 64)")
    parser.add_argument("--events", type=int, default=100_000, help="webhook events (0: skip)")
    parser.add_argument("--batch", type=int, default=1000, help="events per webhook post")
    parser.add_argument("--posters", type=int, default=4, help="webhook posts in flight at once")
    parser.add_argument("--naive-events", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.naive_messages = min(args.naive_messages, args.messages)
    args.window_size = args.window_size or [64]
    report = {"send": bench_send(args)}
    if args.events and not postgres_reachable():
        print(f"PostgreSQL not reachable at {POSTGRES_URL}: the webhook figure is skipped "
              "(set LOJAL_TEST_POSTGRES_URL)", file=sys.stderr)
        args.events = 0
    if args.events:
        report["webhook"] = bench_webhook(args)
    report["load_average"] = os.getloadavg()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    send = report["send"]
    print(f"Mail Send, {args.html_kb} KB HTML per message, local SendGrid in its own process")
    print(f"  pooled transport ({args.concurrency} connections): {send['pooled']['messages']:,} messages in "
          f"{send['pooled']['seconds']:.1f} s = {send['pooled']['per_s']:,.0f} msg/s  {send['pooled']['outcomes']}")
    print(f"  official sendgrid client (default): {send['official_client']['messages']:,} messages in "
          f"{send['official_client']['seconds']:.1f} s = {send['official_client']['per_s']:,.0f} msg/s")
    for name in ("pooled", "official_client"):
        part = send[name]
        print(f"  {name}: CPU per message {part['client_cpu_ms_per_message']:.2f} ms in the client, "
              f"{part['server_cpu_ms_per_message']:.2f} ms in the local SendGrid")
    for name, part in send["whole_delivery_path"].items():
        database = (f", {part['database_cpu_ms_per_message']:.3f} ms in PostgreSQL"
                    if part["database_cpu_ms_per_message"] is not None else "")
        print(f"  whole delivery path (pipeline.deliver, ledger on {name}, {args.concurrency} in flight): "
              f"{part['messages']:,} messages in {part['seconds']:.1f} s = {part['per_s']:,.0f} msg/s; CPU per message "
              f"{part['client_cpu_ms_per_message']:.3f} ms in the run's process, {part['server_cpu_ms_per_message']:.3f} ms "
              f"in the local SendGrid{database}; ledger {part['ledger']}")
    print(f"  ratio {send['ratio']:.1f}x; local SendGrid counted {send['local_sendgrid']} "
          f"exactly once: {send['exactly_once']}")
    if args.events:
        hook = report["webhook"]
        print(f"Event Webhook into PostgreSQL: {hook['events']:,} events in {hook['seconds']:.1f} s = "
              f"{hook['per_s']:,.0f} events/s (batches of {hook['batch']}, {hook['posters']} posts in flight); "
              f"stored {hook['stored']:,}, nothing lost: {hook['nothing_lost']}")
        print(f"  one transaction per event: {hook['naive_one_transaction_per_event']['per_s']:,.0f} events/s; "
              f"ratio {hook['ratio']:.1f}x")
    print(f"load average {report['load_average']}")


if __name__ == "__main__":
    main()
