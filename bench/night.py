"""Benchmark: the whole night on PostgreSQL, delivered to the local SendGrid, at growing sizes.

    .venv/bin/python bench/night.py --customers 100000 --customers 300000 [--runner default --runner dask2]
                                    [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--json]
                                    [--reuse-shop]

For each size: a synthetic shop (lojal.sample: about 12 order lines per customer) is written with
COPY into a fresh PostgreSQL database, then the real `nightly` Prefect flow runs (a temporary
Prefect server with its own home, the SendGrid backend against `lojal sendgrid-local` run as its
own process) once per runner: `default` (batches one after another in the run's process) and
`daskN` (a local Dask cluster of N worker processes, as `lojal run --dask-local N`); each runner gets
its own copy of the store. Printed per run: wall time per stage (from Prefect's task runs) and
when it started and ended (seconds into the night), task runs, messages, accepted by the local
SendGrid (and duplicates: must be 0), whether the tracking report was written, peak memory (this
process, and the largest process of each kind: a Dask worker's, say), the share of the machine's CPU
time busy during the night (every process, from /proc/stat), the cores each kind of process kept
busy during the night and its main stages (bench/proc_cpu.py), and cost per customer; then the ratio
of each runner against `default` and of each size against the smallest (linear cost
keeps the ratio near 1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from proc_cpu import CpuSampler, cpu_ticks

PROJECT = Path(__file__).resolve().parents[1]
CPU_STAGES = ("prepare_night", "decide_campaigns", "record_campaign", "send-batch")  # CPU per kind printed for these
LOJAL = str(Path(sys.executable).parent / "lojal")
KEY = "SG.bench-night-key-0123456789"
RUN_DATE = date(2026, 11, 24)
POSTGRES_URL = os.environ.get("LOJAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def fresh_database(base_url: str, name: str, template: str | None = None) -> str:
    """A new, empty database (or a copy of `template`), replacing one of that name."""
    from sqlalchemy import create_engine, text

    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return base_url.rsplit("/", 1)[0] + f"/{name}"


def write_shop(url: str, shop) -> None:
    """The shop into a new store with COPY (lojal.store.write.bulk_insert), one transaction."""
    from lojal.store import connect, init_schema, schema
    from lojal.store.write import bulk_insert

    engine = connect(url)
    init_schema(engine)
    with engine.begin() as conn:
        for table, frame in ((schema.customers, shop.customers), (schema.products, shop.products),
                             (schema.orders, shop.orders), (schema.order_lines, shop.lines),
                             (schema.suppressions, shop.suppressions), (schema.product_prices, shop.prices),
                             (schema.product_texts, shop.texts)):
            if frame is not None and len(frame):
                bulk_insert(conn, table, frame)
    engine.dispose()


def project_copy(root: Path, batch_size: int | None = None) -> tuple[Path, int]:
    """The shipped project, delivering through SendGrid (the local one), in batches of `batch_size`
    (None: the shipped config's); returns the project's root and its batch size."""
    import yaml

    from lojal.config import Delivery

    for folder in ("config", "segments", "templates"):
        shutil.copytree(PROJECT / folder, root / folder)
    sender = root / "config" / "sender.yaml"
    settings = yaml.safe_load(sender.read_text())
    settings["delivery"]["backend"] = "sendgrid"
    settings["delivery"]["batch_size"] = batch_size or settings["delivery"].get("batch_size", Delivery().batch_size)
    sender.write_text(yaml.safe_dump(settings))
    return root, settings["delivery"]["batch_size"]


def start_local_sendgrid():
    proc = subprocess.Popen([LOJAL, "sendgrid-local", "--port", "0", "--api-key", KEY, "--no-keep-bodies"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"could not start the local SendGrid: {line}{proc.stdout.read()}")
    return proc, match.group(1)


def run_night(root: Path, dask_local: int | None) -> tuple[object, float, float, CpuSampler, float]:
    """The night's state, its wall seconds, the share of the machine's CPU time busy meanwhile
    (all processes: the flow, the local SendGrid, PostgreSQL, the Prefect server; /proc/stat), and
    the CPU per kind of process, second by second (proc_cpu), and when it started (epoch seconds)."""
    from lojal.flows.nightly import nightly

    before, sampler = cpu_ticks(), CpuSampler().start()
    started = time.time()
    try:
        state, seconds = timed(nightly, run_date=RUN_DATE, project_dir=str(root), dask_local=dask_local,
                               return_state=True)
    finally:
        sampler.stop()
    after = cpu_ticks()
    busy = (after[0] - before[0]) / max(1, after[1] - before[1]) if before and after else float("nan")
    return state, seconds, busy, sampler, started


def task_run_stages(flow_run_id) -> tuple[dict[str, tuple], dict[str, int]]:
    """(first start, last end) per task name and task runs per name, for this night's flow run and
    its campaign subflows; and the flow run's own start and end."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])), limit=200)
        ids = [flow_run_id, *(c.id for c in children)]
        runs = []
        while True:
            page = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                                         limit=200, offset=len(runs))
            runs += page
            if len(page) < 200:
                break
        flow_run = client.read_flow_run(flow_run_id)
    spans: dict[str, list] = {"nightly flow run": [flow_run.start_time, flow_run.end_time]}
    counts: dict[str, int] = {"nightly flow run": 1}
    for run in runs:
        name = ("send-batch" if "-batch-" in run.name else "campaign subflows" if run.name.startswith("campaign")
                else run.name.rsplit("-", 1)[0])
        counts[name] = counts.get(name, 0) + 1
        if run.start_time and run.end_time:
            span = spans.setdefault(name, [run.start_time, run.end_time])
            span[0], span[1] = min(span[0], run.start_time), max(span[1], run.end_time)
    return {k: (a, b) for k, (a, b) in spans.items()}, counts


def peak_memory_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"bench_process": round(own, 1), "largest_finished_child": round(children, 1)}


def one_night(customers: int, runner: str, url: str, work: Path, batch_size: int | None = None) -> dict:
    import httpx

    dask_local = int(runner[4:]) if runner.startswith("dask") else None
    root, batch_size = project_copy(work / f"{runner}-{customers}", batch_size)
    proc, sendgrid_url = start_local_sendgrid()  # its own per night: the same message ids recur across runners
    try:
        os.environ.update({"LOJAL_DATABASE_URL": url, "LOJAL_HOME": str(root / "state"),
                           "SENDGRID_API_KEY": KEY, "LOJAL_SENDGRID_URL": sendgrid_url})
        state, seconds, busy, sampler, started = run_night(root, dask_local)
        after = httpx.get(f"{sendgrid_url}/_local/stats").json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    spans, task_runs = task_run_stages(state.state_details.flow_run_id)
    stages = {k: (b - a).total_seconds() for k, (a, b) in spans.items()}
    offsets = {k: [round(a.timestamp() - started, 1), round(b.timestamp() - started, 1)]
               for k, (a, b) in spans.items()}
    cores = {"night": sampler.cores(), **{k: sampler.cores(spans[k][0].timestamp(), spans[k][1].timestamp())
                                         for k in CPU_STAGES if k in spans}}
    messages = sum(c["rendered"] for c in result["campaigns"])
    return {"customers": customers, "runner": runner, "batch_size": batch_size,
            "night_seconds": round(seconds, 2),
            "stages_seconds": {k: round(v, 2) for k, v in stages.items()}, "task_runs": task_runs,
            "stages_from_to": offsets,
            "messages": messages, "delivered": sum(c["delivered"] for c in result["campaigns"]),
            "failed": sum(c["failed"] for c in result["campaigns"]),
            "tracking_report_written": result.get("tracking_report") is not None,
            "accepted_by_local_sendgrid": after["accepted"], "duplicates_at_local_sendgrid": after["duplicates"],
            "microseconds_per_customer": round(1e6 * seconds / customers, 1),
            "machine_cpu_busy": {"share": round(busy, 3), "cores": os.cpu_count()}, "cpu_cores_by_process": cores,
            "peak_memory_mb": peak_memory_mb(), "peak_memory_mb_by_process": sampler.peak_memory_mb(),
            "load": os.getloadavg()}


def bench(args) -> list[dict]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from lojal.commands import ensure_prefect_api, quiet_prefect_console
    from lojal.sample import generate_shop

    quiet_prefect_console(False)
    api_url = ensure_prefect_api()
    reports = []
    with tempfile.TemporaryDirectory(prefix="lojal-bench-night-") as tmp, \
            temporary_settings({PREFECT_API_URL: api_url} if api_url else {}):
        for customers in args.customers:
            kept = kept_shop(args.database_url, customers) if args.reuse_shop else None
            shop, t_generate = (None, 0.0) if kept else timed(generate_shop, customers, 7, RUN_DATE)
            if shop is not None:
                print(f"{customers:,} customers: {len(shop.orders):,} orders, {len(shop.lines):,} order lines "
                      f"generated in {t_generate:.1f} s", flush=True)
            if args.reuse_shop and not kept:
                write_shop(fresh_database(args.database_url, shop_database(customers)), shop)
            for runner in args.runner:
                name = f"lojal_bench_night_{runner}_{customers}"
                if args.reuse_shop:
                    url, t_write = timed(fresh_database, args.database_url, name, template=shop_database(customers))
                else:
                    url = fresh_database(args.database_url, name)
                    _, t_write = timed(write_shop, url, shop)
                print(f"  {runner}: store {'copied' if args.reuse_shop else 'written with COPY'} in {t_write:.1f} s; "
                      "running the night...", flush=True)
                report = one_night(customers, runner, url, Path(tmp), args.batch_size)
                report.update({**shop_size(url), "generate_seconds": round(t_generate, 2),
                               "write_store_seconds": round(t_write, 2)})
                reports.append(report)
                print_report(report)
            del shop
    return reports


def shop_database(customers: int) -> str:
    """Where --reuse-shop keeps the written shop of this size (seed 7, night RUN_DATE)."""
    return f"lojal_bench_night_shop_{customers}"


def kept_shop(base_url: str, customers: int) -> bool:
    from sqlalchemy import create_engine, text

    admin = create_engine(base_url)
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                             {"name": shop_database(customers)}).first()
    admin.dispose()
    return found is not None


def shop_size(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        orders, lines = conn.execute(text("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_lines)")).one()
    engine.dispose()
    return {"orders": int(orders), "order_lines": int(lines)}


def print_report(r: dict) -> None:
    print(f"  {r['runner']}, {r['customers']:,} customers, batches of up to {r['batch_size']:,}: night {r['night_seconds']:.1f} s "
          f"({r['microseconds_per_customer']:.0f} µs/customer), {r['messages']:,} messages, "
          f"{r['delivered']:,} delivered, {r['failed']} failed; local SendGrid accepted {r['accepted_by_local_sendgrid']:,}, "
          f"duplicates {r['duplicates_at_local_sendgrid']}; tracking report "
          f"{'written' if r['tracking_report_written'] else 'NOT WRITTEN (see the flow log)'}; load {r['load'][0]:.2f}", flush=True)
    for name, seconds in sorted(r["stages_seconds"].items(), key=lambda kv: -kv[1]):
        start, end = r["stages_from_to"][name]
        print(f"    {name:<22} {seconds:8.1f} s  ({r['task_runs'].get(name, 0)} task runs; from {start:.1f} to {end:.1f} s "
              "into the night)")
    print(f"    peak memory: {r['peak_memory_mb']}; the machine's CPU busy during the night: "
          f"{100 * r['machine_cpu_busy']['share']:.0f}% of {r['machine_cpu_busy']['cores']} cores", flush=True)
    print("    peak memory of one process of each kind: " + ", ".join(
        f"{kind} {mb:,.0f} MB" for kind, mb in r["peak_memory_mb_by_process"].items() if mb >= 1), flush=True)
    for span, cores in r["cpu_cores_by_process"].items():
        print(f"    cores busy during {span:<15} " + ", ".join(f"{kind} {n:.2f}" for kind, n in cores.items() if n >= 0.01)
              + f" (sum {sum(cores.values()):.2f})", flush=True)


def ratios(reports: list[dict]) -> list[str]:
    lines = []
    default = {r["customers"]: r for r in reports if r["runner"] == "default"}
    for r in reports:
        if r["runner"] != "default" and r["customers"] in default:
            lines.append(f"{r['runner']} vs default at {r['customers']:,}: "
                         f"{default[r['customers']]['night_seconds'] / r['night_seconds']:.2f}× the speed")
    for runner in dict.fromkeys(r["runner"] for r in reports):
        mine = sorted((r for r in reports if r["runner"] == runner), key=lambda r: r["customers"])
        for r in mine[1:]:
            lines.append(f"{runner}: cost per customer at {r['customers']:,} is "
                         f"{r['microseconds_per_customer'] / mine[0]['microseconds_per_customer']:.2f}× that at "
                         f"{mine[0]['customers']:,}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, action="append")
    parser.add_argument("--runner", action="append", help="default or daskN (N local worker processes)")
    parser.add_argument("--database-url", default=POSTGRES_URL, help="a PostgreSQL server (databases are made there)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--batch-size", type=int, help="delivery.batch_size for the nights (default: the shipped one)")
    parser.add_argument("--reuse-shop", action="store_true", help=(
        "keep each size's written shop in a database (lojal_bench_night_shop_<N>) and copy it for each "
        "run instead of generating and writing it again: for comparing code on the same shop; drop "
        "those databases when done"))
    args = parser.parse_args()
    args.customers = args.customers or [100_000]
    args.runner = args.runner or ["default"]
    if any(r != "default" and not re.fullmatch(r"dask[1-9][0-9]?", r) for r in args.runner):
        parser.error("--runner is default or daskN, e.g. dask2")
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="lojal-bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "240")  # a fresh home migrates first
    print(f"load average at start: {os.getloadavg()}", flush=True)
    reports = bench(args)
    for line in ratios(reports):
        print(line)
    print(f"load average at end: {os.getloadavg()}", flush=True)
    if args.json:
        print(json.dumps(reports, indent=2, default=str))


if __name__ == "__main__":
    main()
