"""Charts of a run's funnel, as inline SVG (the run report) and as text bars (Prefect artifacts).

Every campaign is one horizontal bar of the customers its segment matched, split into what
happened to them: delivered, failed, delivered earlier, or excluded and why. Pure functions of the
run's summaries; nothing here reads customer data.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from lojal.audience import INVALID_EMAIL, NO_CONSENT, SUPPRESSED
from lojal.decisions import HIGHER_PRIORITY, REASONS

ALREADY_RECEIVED, NO_OCCASION = REASONS["already_received"], REASONS["no_occasion"]
SENT_EARLIER_TONIGHT = REASONS["sent_tonight"]

# Outcome groups in bar order, with their colours (colour-blind-safe palette, Okabe & Ito).
OUTCOMES: dict[str, str] = {
    "delivered": "#0072B2",
    "failed": "#D55E00",
    "delivered earlier": "#56B4E9",
    "higher-priority campaign": "#E69F00",
    "held out": "#000000",
    "already received": "#CC79A7",
    "no consent": "#999999",
    "suppressed": "#555555",
    "invalid address": "#F0E442",
    "no occasion": "#009E73",
    "other": "#BBBBBB",
}

_REASON_GROUPS = (  # prefix of an exclusion reason -> outcome group
    (HIGHER_PRIORITY, "higher-priority campaign"),
    (SENT_EARLIER_TONIGHT, "delivered earlier"),
    (REASONS["held_out"], "held out"),
    (ALREADY_RECEIVED, "already received"),
    (NO_CONSENT, "no consent"),
    (SUPPRESSED, "suppressed"),
    (INVALID_EMAIL, "invalid address"),
    (NO_OCCASION, "no occasion"),
)

ROW_HEIGHT, BAR_HEIGHT, LABEL_WIDTH, BAR_WIDTH, COUNT_WIDTH = 30, 18, 150, 520, 60


@dataclass(frozen=True)
class BarPart:
    outcome: str
    count: int


def outcome_of(reason: str) -> str:
    return next((group for prefix, group in _REASON_GROUPS if reason.startswith(prefix)), "other")


def bar_parts(summary: dict) -> list[BarPart]:
    """What happened to each matched customer of one campaign, grouped and in legend order."""
    counts = dict.fromkeys(OUTCOMES, 0)
    counts["delivered"] = summary["delivered"] + summary.get("duplicates", 0)
    counts["failed"] = summary["failed"]
    for reason, count in summary["excluded"].items():
        counts[outcome_of(reason)] += count
    return [BarPart(outcome, count) for outcome, count in counts.items() if count]


def funnel_svg(summaries: list[dict]) -> str:
    """One stacked bar per campaign, all on the scale of the largest segment match."""
    scale = BAR_WIDTH / max([s["matched"] for s in summaries] + [1])
    height = ROW_HEIGHT * len(summaries) + 10
    width = LABEL_WIDTH + BAR_WIDTH + COUNT_WIDTH
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="funnel" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="Customers matched per campaign and '
             f'what happened to them">']
    for row, summary in enumerate(summaries):
        y = row * ROW_HEIGHT + 5
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{y + 13}" text-anchor="end">{escape(summary["campaign_id"])}</text>')
        x = float(LABEL_WIDTH)
        for part in bar_parts(summary):
            w = part.count * scale
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAR_HEIGHT}" '
                         f'fill="{OUTCOMES[part.outcome]}" data-outcome="{escape(part.outcome)}" '
                         f'data-count="{part.count}"><title>{escape(part.outcome)}: {part.count:,}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 13}">{summary["matched"]:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend_html(summaries: list[dict]) -> str:
    """The colours of the outcomes that occur in this run, in bar order."""
    present = {part.outcome for s in summaries for part in bar_parts(s)}
    items = "".join(f'<li><span style="background:{colour}"></span>{escape(outcome)}</li>'
                    for outcome, colour in OUTCOMES.items() if outcome in present)
    return f'<ul class="legend">{items}</ul>'


def text_bar(count: int, largest: int, width: int = 20) -> str:
    """A bar of block characters for markdown tables: eighths of a block for the remainder."""
    if count <= 0 or largest <= 0:
        return ""
    eighths = max(1, round(count / largest * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[rest]
