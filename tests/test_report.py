"""The run report: the funnel chart (SVG and text bars) drawn from a run's summaries, and what
headless Chromium shows of it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest

from headless import chromium, count_pixels, decode_png, needs_chromium, screenshot
from lojal.charts import BAR_WIDTH, OUTCOMES, bar_parts, funnel_svg, legend_html, text_bar
from lojal.paths import Paths
from lojal.report import night_markdown, write_run_report

RUN = date(2026, 11, 24)
SVG = "{http://www.w3.org/2000/svg}"


def summary(campaign_id: str, matched: int, delivered: int, excluded: dict[str, int], failed: int = 0,
            duplicates: int = 0, name: str = "A campaign") -> dict:
    return {"campaign_id": campaign_id, "name": name, "matched": matched, "selected": matched - sum(excluded.values()),
            "excluded": excluded, "already_sent": 0, "rendered": delivered + failed, "delivered": delivered,
            "duplicates": duplicates, "failed": failed, "errors": []}


def bars(svg: str) -> list[list[tuple[str, int, float]]]:
    """Per campaign row: (outcome, count, width) of each rectangle, read back from the SVG."""
    rows: dict[str, list] = {}
    for rect in ET.fromstring(svg).iter(f"{SVG}rect"):
        rows.setdefault(rect.get("y"), []).append((rect.get("data-outcome"), int(rect.get("data-count")),
                                                   float(rect.get("width"))))
    return list(rows.values())


def test_exclusion_reasons_are_grouped_by_outcome():
    s = summary("win_back", 100, 60, {"no e-mail marketing consent": 20, "gets higher-priority vip_care tonight": 9,
                                      "gets higher-priority birthday tonight": 1, "on the suppression list": 4,
                                      "already received for this occasion": 5, "something new": 1})
    assert [(g.outcome, g.count) for g in bar_parts(s)] == [
        ("delivered", 60), ("higher-priority campaign", 10), ("already received", 5), ("no consent", 20),
        ("suppressed", 4), ("other", 1)]


def test_bars_share_one_scale_and_add_up_to_the_matched_customers():
    summaries = [summary("post_purchase", 50, 40, {"no e-mail marketing consent": 10}),
                 summary("win_back", 200, 150, {"on the suppression list": 30}, failed=20)]
    rows = bars(funnel_svg(summaries))
    assert [[(o, c) for o, c, _ in row] for row in rows] == [
        [("delivered", 40), ("no consent", 10)],
        [("delivered", 150), ("failed", 20), ("suppressed", 30)]]
    assert sum(w for _, _, w in rows[1]) == pytest.approx(BAR_WIDTH, abs=0.5)   # the largest match fills the width
    assert sum(w for _, _, w in rows[0]) == pytest.approx(BAR_WIDTH / 4, abs=0.5)
    assert re.findall(r"</span>([^<]+)</li>", legend_html(summaries)) == ["delivered", "failed", "no consent",
                                                                           "suppressed"]


def test_a_rerun_shows_what_was_delivered_earlier():
    rerun = summary("survey", 30, 0, {"already sent tonight (a re-run)": 30})
    assert [(g.outcome, g.count) for g in bar_parts(rerun)] == [("delivered earlier", 30)]
    assert funnel_svg([summary("x", 0, 0, {})]).count("<rect") == 0


def test_names_and_reasons_are_escaped(tmp_path):
    hostile = summary("c1", 10, 9, {"<img src=x onerror=alert(1)>": 1}, name="<script>alert(1)</script>")
    page = write_run_report(Paths(project=tmp_path, state=tmp_path / "var"), RUN, [hostile]).read_text()
    assert "<script>" not in page and "<img" not in page and "&lt;script&gt;" in page


def test_text_bars_for_markdown():
    assert text_bar(10, 10, width=4) == "████"
    assert text_bar(5, 10, width=4) == "██"
    assert text_bar(1, 16, width=2) == "▏"
    assert text_bar(1, 10_000, width=20) == "▏"  # anything delivered is visible
    assert text_bar(0, 10) == "" and text_bar(3, 0) == ""
    markdown = night_markdown([summary("a", 10, 10, {}), summary("b", 10, 5, {"x": 5})], RUN,
                              Path("var/outbox/2026-11-24"), Path("var/runs/2026-11-24/report.html"))
    assert "| a | 10 | 0 | 10 | 10 | 10 | 0 | ████████████████████ |" in markdown
    assert "| b | 10 | 5 | 5 | 5 | 5 | 0 | ██████████ |" in markdown


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


@pytest.mark.browser
@needs_chromium
def test_chromium_draws_the_funnel_to_scale(tmp_path):
    summaries = [summary("post_purchase", 100, 100, {}),
                 summary("win_back", 100, 50, {"no e-mail marketing consent": 50})]
    page = write_run_report(Paths(project=tmp_path, state=tmp_path / "var"), RUN, summaries)
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert re.search(r"<h1>Nightly run 2026-11-24</h1>", dom) and "150 messages delivered" in dom
    shot = tmp_path / "report.png"
    screenshot(tmp_path, page.as_uri(), shot, 900, 500)
    _, _, rows = decode_png(shot.read_bytes())
    delivered = count_pixels(rows, _hex(OUTCOMES["delivered"]), tolerance=2)
    no_consent = count_pixels(rows, _hex(OUTCOMES["no consent"]), tolerance=2)
    # 150 customers' worth of bar (1.5 × 520 px) against 50 (0.5 × 520 px), 18 px high; plus a legend swatch.
    assert delivered == pytest.approx(1.5 * BAR_WIDTH * 18, rel=0.1)
    assert no_consent == pytest.approx(0.5 * BAR_WIDTH * 18, rel=0.15)
