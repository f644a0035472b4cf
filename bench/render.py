"""Benchmark: personalizing e-mails from templates compiled once, against compiling MJML per recipient.

    .venv/bin/python bench/render.py [--emails 100000] [--sample 150] [--official-sample 400] [--json]
    .venv/bin/python bench/render.py --fidelity      # compare MJML compilers on the shipped templates

In one process (= one core) it measures e-mails per second for
  (a) compile-once: every (template, locale) compiled at load, then Jinja only (TemplateSet.render:
      subject, preheader, HTML and text part) for --emails recipients;
  (b) per recipient with the project's compiler (Python `mjml` port): Jinja on the MJML, then compile,
      on a --sample of recipients (HTML only, so it is flattered);
  (c) per recipient with the official MJML through Node (one persistent node process), on
      --official-sample recipients, when `node` exists (bench/node is npm-installed on first use).
Recipients get 4 recommended products each and locale-formatted money and dates; they rotate over
the six shipped campaigns that recommend products and the four locales. Building the contexts is
not timed (the pipeline does that work in any case).

--fidelity compiles each shipped template (en) with every available compiler and counts the lines
that differ from the official MJML after normalizing formatting (one tag per line, whitespace
collapsed). `mrml` is not a dependency: put it on PYTHONPATH to include it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from lojal.config import LOCALES, load_config
from lojal.paths import Paths
from lojal.render import TemplateSet, load_templates
from lojal.render.catalog import substitute_strings
from lojal.render.mjml_compile import NodeMjml, PythonMjml, node_mjml_available
from lojal.render.samples import CURRENCY_BY_LOCALE
from lojal.render.templates import compile_templates, track_links
from lojal.render.sources import expand_includes

PROJECT = Path(__file__).resolve().parents[1]
NODE_DIR = PROJECT / "bench" / "node"
BATCH = 1000
FIRST_NAMES = {"en": ["Olivia", "Harry", "Amelia"], "nb": ["Bjørn", "Åse", "Ingrid"],
               "sv": ["Åsa", "Björn", "Märta"], "da": ["Søren", "Mette", "Ærø"]}
REASONS = [("bought_together", {"product": "Stoneware mug"}), ("reorder_due", {"days": 30, "product": "Soap"}),
           ("bought_before", {"times": 3}), ("favourite_category", {"category": "Textiles"}),
           ("similar_customers", {}), ("trending", {}), ("popular", {})]


def product_catalogue(count: int = 500, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [dict(sku=f"SKU-{i:04d}", title=f"Product {i} {rng.choice(['linen', 'wool', 'oak', 'glass'])}",
                 category=rng.choice(["Textiles", "Kitchen", "Decor", "Candles"]),
                 price=round(rng.uniform(49, 2499), 0)) for i in range(count)]


def recipient_context(index: int, campaign, products: list[dict], rng: random.Random) -> tuple[str, dict[str, Any]]:
    locale = LOCALES[index % len(LOCALES)]
    currency = CURRENCY_BY_LOCALE[locale]
    picks = rng.sample(products, 4)
    recommendations = []
    for slot, product in enumerate(picks, start=1):
        code, params = REASONS[rng.randrange(len(REASONS))]
        recommendations.append(dict(product, currency=currency, slot=slot, strategy="bench", reason_code=code,
                                    reason_params=params, reason="English reason",
                                    image_url=f"https://shop.example/img/{product['sku']}.jpg",
                                    product_url=f"https://shop.example/p/{product['sku']}"))
    ordered = rng.sample(products, 2)
    placed = datetime(2026, 11, 23, 9, 0) - timedelta(days=rng.randrange(0, 30))
    items = [dict(sku=p["sku"], title=p["title"], quantity=rng.randint(1, 3), unit_price=p["price"],
                  image_url=f"https://shop.example/img/{p['sku']}.jpg", product_url=f"https://shop.example/p/{p['sku']}")
             for p in ordered]
    message_id = f"{campaign.id}-{index}"
    context = dict(
        customer=dict(id=index, first_name=rng.choice(FIRST_NAMES[locale]), email=f"c{index}@example.com",
                      locale=locale, country=locale.upper(), tier="Gold", previous_tier="Silver",
                      order_count=rng.randint(1, 20), days_since_last_order=float(rng.randint(1, 200)),
                      birthday=date(1980 + index % 30, 11, 24)),
        recommendations=recommendations,
        last_order=dict(id=f"{index}-1", placed_at=placed, currency=currency, items=items,
                        total=sum(i["unit_price"] * i["quantity"] for i in items)),
        campaign=dict(id=campaign.id, name=campaign.name),
        message=dict(id=message_id, unsubscribe_url=f"https://shop.example/unsubscribe/{message_id}",
                     run_date=date(2026, 11, 24)),
    )
    return locale, context


def recipients(config, count: int, seed: int = 11) -> Iterator[list[tuple[str, str, dict]]]:
    """Batches of (template, locale, context), rotating over campaigns with recommendations."""
    campaigns = [c for c in config.campaigns.enabled if c.recommendations]
    products, rng = product_catalogue(), random.Random(seed)
    for start in range(0, count, BATCH):
        batch = []
        for index in range(start, min(start + BATCH, count)):
            campaign = campaigns[index % len(campaigns)]
            locale, context = recipient_context(index, campaign, products, rng)
            batch.append((campaign.template, locale, context))
        yield batch


@dataclass(frozen=True)
class Rate:
    per_cpu_second: float  # e-mails per second of CPU time used: "per core", whatever else runs
    per_wall_second: float
    wall_seconds: float


def process_cpu_seconds(pid: int | None) -> float:
    """CPU seconds used by this process, plus by `pid` (the node worker) when given (Linux /proc)."""
    total = time.process_time()
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


def measure(config, count: int, render: Callable[[str, str, dict], Any], warm_up: int = 0,
            helper_pid: int | None = None) -> Rate:
    """Rates rendering `count` recipients; building contexts is not timed.

    `warm_up` recipients (of another seed) are rendered first, untimed: Node's JIT and the
    compilers' caches would otherwise dominate a small sample.
    """
    for batch in recipients(config, warm_up, seed=99):
        for template, locale, context in batch:
            render(template, locale, context)
    wall = cpu = 0.0
    for batch in recipients(config, count):
        wall_start, cpu_start = time.perf_counter(), process_cpu_seconds(helper_pid)
        for template, locale, context in batch:
            render(template, locale, context)
        wall += time.perf_counter() - wall_start
        cpu += process_cpu_seconds(helper_pid) - cpu_start
    return Rate(count / cpu, count / wall, wall)


def official_compiler() -> NodeMjml | None:
    if shutil.which("node") is None:
        return None
    if not node_mjml_available() and shutil.which("npm"):
        print("installing the official MJML: npm install --prefix bench/node", file=sys.stderr)
        subprocess.run(["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--silent"], check=True)
    return NodeMjml() if node_mjml_available() else None


def run_benchmark(emails: int, sample: int, official_sample: int) -> dict[str, Any]:
    paths = Paths(project=PROJECT, state=PROJECT / "var")
    config = load_config(paths)
    started = time.perf_counter()
    templates: TemplateSet = load_templates(paths, config)
    compile_seconds = time.perf_counter() - started
    once = measure(config, emails, templates.render)
    slow = measure(config, sample, templates.render_html_compiling_per_recipient, warm_up=10)
    official: Rate | None = None
    official_version = None
    node = official_compiler()
    if node is not None:
        with node:
            official_version = node.version
            official = measure(config, official_sample, lambda t, l, c: templates.render_html_compiling_per_recipient(
                t, l, c, compiler=node), warm_up=50, helper_pid=node.pid)
    return {
        "emails": emails,
        "compiled_templates": len(templates.compiled),
        "compile_seconds": round(compile_seconds, 2),
        "compile_once_wall_seconds": round(once.wall_seconds, 2),
        "compile_once_per_s": round(once.per_cpu_second, 1),
        "per_recipient_per_s": round(slow.per_cpu_second, 2),
        "official_per_recipient_per_s": None if official is None else round(official.per_cpu_second, 2),
        "ratio_compile_once_vs_per_recipient": round(once.per_cpu_second / slow.per_cpu_second, 1),
        "ratio_compile_once_vs_official": None if official is None else round(
            once.per_cpu_second / official.per_cpu_second, 1),
        "wall_clock_per_s": {"compile_once": round(once.per_wall_second, 1),
                             "per_recipient": round(slow.per_wall_second, 2),
                             "official_per_recipient": None if official is None else round(official.per_wall_second, 2)},
        "per_recipient_sample": sample,
        "official_sample": official_sample if official is not None else 0,
        "official_mjml_version": official_version,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


class _Tokens(HTMLParser):
    """One line per tag, text run or conditional-comment marker; attributes and class names sorted,
    style declarations sorted without trailing semicolons, empty class attributes dropped, CSS
    whitespace removed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        shown = []
        for name, value in sorted(attrs, key=lambda a: a[0]):
            if name == "class":
                if not (value or "").strip():
                    continue
                value = " ".join(sorted(value.split()))
            if name == "style" and value:
                value = ";".join(sorted(d.strip().replace(": ", ":") for d in value.split(";") if d.strip()))
            shown.append(f'{name}="{" ".join((value or "").split())}"')
        self.lines.append(f"<{tag} {' '.join(shown)}>".replace(" >", ">"))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag) -> None:
        self.lines.append(f"</{tag}>")

    def handle_data(self, data) -> None:
        text = re.sub(r"\s*([:;{}])\s*", r"\1", data) if self.lasttag == "style" else data
        text = " ".join(text.split())
        if text:
            self.lines.append(text)

    def handle_comment(self, data) -> None:
        conditional = re.match(r"\s*\[if ([^\]]+)\]>(.*?)(<!\[endif\])?\s*$", data, re.DOTALL)
        if conditional:
            self.lines.append(f"<!--[if {' '.join(conditional.group(1).split())}]>")
            self.lines += _formatting_normalized(conditional.group(2))
            if conditional.group(3):
                self.lines.append("<![endif]-->")
        elif data.strip().startswith("<![endif]"):
            self.lines.append("<![endif]-->")
        else:
            self.lines.append(f"<!--{' '.join(data.split())}-->")


def _formatting_normalized(document: str) -> list[str]:
    tokens = _Tokens()
    tokens.feed(document)
    tokens.close()
    return _merge_conditionals(tokens.lines)


def _merge_conditionals(lines: list[str]) -> list[str]:
    """Drop `<![endif]-->` directly followed by `<!--[if mso | IE]>` (what MJML's merge does)."""
    merged: list[str] = []
    for line in lines:
        if line == "<!--[if mso | IE]>" and merged and merged[-1] == "<![endif]-->":
            merged.pop()
            continue
        merged.append(line)
    return merged


def differing_lines(reference: list[str], other: list[str]) -> int:
    matcher = difflib.SequenceMatcher(a=reference, b=other, autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")


def run_fidelity() -> list[dict[str, Any]]:
    paths = Paths(project=PROJECT, state=PROJECT / "var")
    config = load_config(paths)
    catalogs = compile_templates(paths, config).catalogs
    node = official_compiler()
    if node is None:
        raise SystemExit("the fidelity comparison needs node (the official MJML is the reference)")
    compilers: dict[str, Callable[[str], str]] = {"python-mjml": PythonMjml().compile}
    try:
        import mrml  # optional, not a project dependency

        compilers["mrml"] = lambda source: mrml.to_html(source).content
    except ImportError:
        print("mrml not importable: left out of the comparison", file=sys.stderr)
    rows = []
    with node:
        for name in sorted(catalogs):
            expanded = expand_includes(paths.templates_dir / name / "email.mjml", paths.relative, paths.templates_dir)
            source = track_links(substitute_strings(expanded.text, catalogs[name], "en")[0])
            reference = _formatting_normalized(node.compile(source))
            row: dict[str, Any] = {"template": name, "source_lines": source.count("\n") + 1,
                                   "official_lines": len(reference), "official": node.name}
            for label, compile_ in compilers.items():
                try:
                    row[label] = differing_lines(reference, _formatting_normalized(compile_(source)))
                except Exception as exc:  # a candidate failing on a template is a result, not a crash
                    row[label] = f"failed: {type(exc).__name__}: {str(exc)[:80]}"
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=150, help="recipients for the per-recipient Python path")
    parser.add_argument("--official-sample", type=int, default=400, help="recipients for the official MJML path")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--fidelity", action="store_true", help="compare MJML compilers instead")
    args = parser.parse_args()
    if args.fidelity:
        rows = run_fidelity()
        print(json.dumps(rows, indent=2) if args.json else "\n".join(
            " ".join(f"{k}={v}" for k, v in row.items()) for row in rows))
        return
    result = run_benchmark(args.emails, args.sample, args.official_sample)
    if args.json:
        print(json.dumps(result))
        return
    print(f"compiled {result['compiled_templates']} (template, locale) pairs in {result['compile_seconds']} s")
    print(f"(a) compile once, Jinja per recipient: {result['compile_once_per_s']:>10,.0f} e-mails/s per core "
          f"({result['emails']:,} e-mails in {result['compile_once_wall_seconds']} s wall clock)")
    print(f"(b) MJML per recipient, Python port:   {result['per_recipient_per_s']:>10,.1f} e-mails/s per core "
          f"(sample of {result['per_recipient_sample']})")
    if result["official_per_recipient_per_s"] is None:
        print("(c) official MJML per recipient:        skipped (no node)")
    else:
        print(f"(c) MJML per recipient, official {result['official_mjml_version']}: "
              f"{result['official_per_recipient_per_s']:>7,.1f} e-mails/s per core (sample of {result['official_sample']})")
    print(f"(a)/(b) = {result['ratio_compile_once_vs_per_recipient']}x   (a)/(c) = {result['ratio_compile_once_vs_official']}x")
    print(f"per core = per CPU-second used (node's CPU included for (c)); wall clock: {result['wall_clock_per_s']}, "
          f"{result['cpus']} CPUs, load average {result['load_average_1m']}")


if __name__ == "__main__":
    main()
