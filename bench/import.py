"""Benchmark: `lojal import` of a synthetic shop (customers, products, order lines as CSV) into a
fresh store, against today's per-row validation (the former importer's loop, one cell at a time,
timed on a sample and extrapolated to the file, labelled so) in the same run.

    .venv/bin/python bench/import.py [--customers 1000000] [--lines 10000000] [--sample 50000]
                                     [--database-url URL] [--former-database-url URL] [--keep DIR]

The former importer (main at FORMER, loaded from git) imports a sample end to end (the first
--sample customers, all products, those customers' order lines) into its own store (fresh SQLite
unless --former-database-url); its rows/s extrapolates to the whole file, labelled so.
Without --database-url the store is a fresh SQLite file in a temporary folder. A PostgreSQL URL
must name an empty database (create one: `createdb -h 127.0.0.1 -U postgres lojal_bench_import`).
Prints per file: rows, validation time, write time, rows/s, and the per-row rows/s with the ratio;
then peak memory (max RSS).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lojal.store import connect
from lojal.store.importer import SPECS, _validate_cells, import_file, read_chunks

SEED = 12


def write_files(folder: Path, customers: int, lines: int, products: int = 2000) -> dict[str, Path]:
    rng = np.random.default_rng(SEED)
    ids = np.arange(1, customers + 1)
    locales = np.array(["nb", "sv", "da", "en"])
    countries = np.array(["NO", "SE", "DK", "GB"])
    zones = np.array(["Europe/Oslo", "Europe/Stockholm", "Europe/Copenhagen", "Europe/London"])
    where = rng.integers(0, 4, customers)
    created = np.datetime64("2023-01-01T00:00:00") + rng.integers(0, 700 * 86400, customers).astype("timedelta64[s]")
    birthdays = np.datetime64("1950-01-01") + rng.integers(0, 18000, customers).astype("timedelta64[D]")
    frame = pd.DataFrame({
        "customer_id": ids, "email": [f"customer{i}@example{i % 97}.no" for i in ids],
        "first_name": [f"Name{i % 5000}" for i in ids], "locale": locales[where], "country": countries[where],
        "time_zone": zones[where], "birthday": np.where(rng.random(customers) < 0.3, "", birthdays.astype(str)),
        "created_at": np.char.add(created.astype(str), "Z"), "consent_email": np.where(rng.random(customers) < 0.8, "true", "false")})
    paths = {"customers": folder / "customers.csv", "products": folder / "products.csv", "orders": folder / "orders.csv"}
    frame.to_csv(paths["customers"], index=False)
    skus = np.array([f"SKU{i:05d}" for i in range(products)])
    prices = np.round(rng.uniform(20, 2000, products), 2)
    pd.DataFrame({"sku": skus, "title": [f"Product {s}" for s in skus], "category": [f"C{i % 40}" for i in range(products)],
                  "price": prices, "currency": "NOK", "image_url": "", "product_url": [f"https://shop.example/{s}" for s in skus],
                  "in_stock": "true", "margin": "35%"}).to_csv(paths["products"], index=False)
    orders = max(1, lines // 3)
    order_of_line = np.sort(rng.integers(0, orders, lines))
    buyer = rng.integers(1, customers + 1, orders)
    placed = np.datetime64("2024-01-01T00:00:00") + rng.integers(0, 700 * 86400, orders).astype("timedelta64[s]")
    placed_text = np.char.add(placed.astype(str), "Z")
    pick = rng.integers(0, products, lines)
    with paths["orders"].open("w", encoding="utf-8") as out:
        out.write("order_id,customer_id,placed_at,sku,quantity,unit_price,currency\n")
        for start in range(0, lines, 1_000_000):
            part = slice(start, start + 1_000_000)
            o = order_of_line[part]
            pd.DataFrame({"order_id": o + 1, "customer_id": buyer[o], "placed_at": placed_text[o], "sku": skus[pick[part]],
                          "quantity": rng.integers(1, 4, len(o)), "unit_price": prices[pick[part]], "currency": "NOK"}
                         ).to_csv(out, index=False, header=False)
    return paths


FORMER = "038d273"  # main before this change: the per-row importer


def former_importer():
    """Today's importer as it was on main before the vectorized one (read from git)."""
    import importlib.util
    import subprocess

    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "-C", str(root), "show", f"{FORMER}:src/lojal/store/importer.py"],
                            capture_output=True, text=True, check=True).stdout
    target = Path(tempfile.mkdtemp()) / "former_importer.py"
    target.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("former_importer", target)
    module = importlib.util.module_from_spec(spec)
    sys.modules["former_importer"] = module
    spec.loader.exec_module(module)
    return module


def former_rates(paths: dict[str, Path], sample: int, url: str) -> dict[str, float]:
    """Rows/s of the former importer, end to end, on a sample: the first `sample` customers, all
    products, and the order lines of those customers (at most `sample`)."""
    former = former_importer()
    folder = Path(tempfile.mkdtemp())
    customers = next(read_chunks(paths["customers"])).iloc[:sample]
    customers.to_csv(folder / "customers.csv", index=False)
    orders = next(read_chunks(paths["orders"]))
    orders = orders[orders["customer_id"].astype(int) <= int(customers["customer_id"].astype(int).max())].iloc[:sample]
    orders = orders[orders["order_id"] != orders["order_id"].iloc[-1]]  # whole orders only
    orders.to_csv(folder / "orders.csv", index=False)
    engine = connect(url)
    rates = {}
    for kind, path in (("customers", folder / "customers.csv"), ("products", paths["products"]),
                       ("orders", folder / "orders.csv")):
        started = time.perf_counter()
        former.import_file(engine, kind, path)
        rows = sum(1 for _ in path.open(encoding="utf-8")) - 1
        rates[kind] = rows / (time.perf_counter() - started)
        print(f"  former importer, {kind}: {rows:,} rows (sample) in {time.perf_counter() - started:.1f} s = "
              f"{rates[kind]:,.0f} rows/s")
    engine.dispose()
    return rates


def per_row_rate(kind: str, path: Path, sample: int) -> float:
    """Rows/s of the former importer's per-row validation on the file's first `sample` rows."""
    head = next(read_chunks(path)).iloc[:sample]
    started = time.perf_counter()
    for col in SPECS[kind]:
        if col.name in head.columns:
            _validate_cells(path, kind, col, col.name, head[col.name])
    return len(head) / (time.perf_counter() - started)


def run(kind: str, path: Path, url: str, sample: int, former: float) -> None:
    engine = connect(url)
    marks: dict[str, float] = {}
    rows = {"validating": 0, "writing": 0}

    def progress(stage: str, n: int) -> None:
        rows[stage] += n
        marks[stage] = time.perf_counter()

    started = time.perf_counter()
    counts = import_file(engine, kind, path, progress=progress)
    total = time.perf_counter() - started
    engine.dispose()
    validated = marks["validating"] - started
    old = per_row_rate(kind, path, sample)
    new = rows["validating"] / validated
    print(f"{kind}: {rows['validating']:,} rows; read+validate {validated:.1f} s ({new:,.0f} rows/s), checks+write "
          f"{total - validated:.1f} s, total {total:.1f} s ({rows['validating'] / total:,.0f} rows/s); {counts}")
    print(f"  per-row validation (former way) on {min(sample, rows['validating']):,} rows: {old:,.0f} rows/s -> "
          f"{rows['validating'] / old:.0f} s for the file (extrapolated); vectorized / per-row = {new / old:.1f}x")
    print(f"  former importer end to end: {rows['validating'] / former:.0f} s for the file (extrapolated from its "
          f"sample rate); this run / former = {rows['validating'] / total / former:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=50_000)
    parser.add_argument("--database-url")
    parser.add_argument("--former-database-url", help="an empty database for the former importer's sample")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the CSV files here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        paths = {k: folder / f"{k}.csv" for k in ("customers", "products", "orders")}
        if not all(p.exists() for p in paths.values()):
            paths = write_files(folder, args.customers, args.lines)
        print(f"files ready in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{p.name} {p.stat().st_size / 1e6:,.0f} MB" for p in paths.values()))
        url = args.database_url or f"sqlite:///{Path(tmp) / 'store.db'}"
        print(f"store: {url.split('@')[-1] if '@' in url else url}")
        former_url = args.former_database_url or f"sqlite:///{Path(tmp) / 'former.db'}"
        print(f"former importer's store: {former_url.split('@')[-1] if '@' in former_url else former_url}")
        former = former_rates(paths, args.sample, former_url)
        for kind in ("customers", "products", "orders"):
            run(kind, paths[kind], url, args.sample, former[kind])
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB")


if __name__ == "__main__":
    main()
