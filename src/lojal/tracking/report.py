"""The marketer's report (`lojal report --from D1 --to D2 --out report.html`): per campaign and day
the funnel (sent, delivered, opened, clicked, bounced, unsubscribed, complained), attributed
conversions and revenue, and each campaign's incremental lift against its held-out customers,
with its interval; A/B arms side by side. One self-contained HTML file: inline SVG charts, no
scripts, no external requests.

Sends are ledger rows whose night (run_date) is in the range: `sent` rows are the mailed group,
`held_out` rows the control. Events come from `delivery_events` by message id (an open counts
once per message, and machine opens are not opens). Orders count when placed from the night's
start up to the attribution window after it (`tracking.attribution_window_days`).
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, select

from lojal.store import schema
from lojal.store.read import read_frame
from lojal.tracking.attribution import Order, Send, Touch, attribute
from lojal.tracking.lift import CENT, Lift, Observation, compare_arms, lift

FUNNEL = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "complained")
PRE_PERIOD_DAYS = 90
_EVENT_COLUMN = {"delivered": "delivered", "opened": "opened", "clicked": "clicked", "bounced": "bounced",
                 "unsubscribed": "unsubscribed", "group_unsubscribed": "unsubscribed", "complained": "complained"}


@dataclass
class DayRow:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FUNNEL, 0))
    conversions: int = 0
    revenue: Decimal = Decimal(0)


@dataclass
class CampaignReport:
    campaign_id: str
    days: dict[date, DayRow]
    lift: Lift
    arms: object | None  # ArmComparison when the campaign has more than one arm

    def total(self, key: str) -> int:
        return sum(d.counts[key] for d in self.days.values())

    @property
    def revenue(self) -> Decimal:
        return sum((d.revenue for d in self.days.values()), Decimal(0))

    @property
    def conversions(self) -> int:
        return sum(d.conversions for d in self.days.values())


@dataclass
class Report:
    date_from: date
    date_to: date
    currency: str
    window_days: float
    campaigns: list[CampaignReport]


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _mailed_or_held_out(date_from: date, date_to: date, states: tuple[str, ...] = ("sent", "held_out")):
    """The report's ledger rows: the nights in the range, mailed (sent) or held out."""
    ledger = schema.send_ledger
    return and_(ledger.c.run_date >= date_from, ledger.c.run_date <= date_to, ledger.c.state.in_(states))


def _sends(conn, date_from: date, date_to: date) -> list:
    ledger = schema.send_ledger
    return conn.execute(select(ledger.c.message_id, ledger.c.campaign_id, ledger.c.customer_id, ledger.c.run_date,
                               ledger.c.state, ledger.c.accepted_at, ledger.c.variant)
                        .where(_mailed_or_held_out(date_from, date_to))).all()


def _events(conn, date_from: date, date_to: date) -> list:
    """The delivery events of the messages sent on these nights, selected in the database (a list of
    their ids would pass the driver's limit on parameters in a big shop's month: 65,535)."""
    ledger, ev = schema.send_ledger, schema.delivery_events
    sent = select(ledger.c.message_id).where(_mailed_or_held_out(date_from, date_to, ("sent",)))
    return conn.execute(select(ev.c.message_id, ev.c.event, ev.c.occurred_at, ev.c.machine_open)
                        .where(ev.c.message_id.in_(sent))).all()


def _orders(conn, since: datetime, until: datetime, date_from: date, date_to: date) -> pd.DataFrame:
    """Orders in [since, until) of the customers mailed or held out on these nights, one row each:
    order_id, customer_id, placed_at, lojal_message_id (the e-mail the shop passed through, when it
    did: attributed by link first) and `cents`, the exact revenue (each line's price rounded to the
    cent, half to even, times its quantity, summed in integers)."""
    o, lines, ledger = schema.orders, schema.order_lines, schema.send_ledger
    customers = select(ledger.c.customer_id).where(_mailed_or_held_out(date_from, date_to))
    rows = read_frame(conn, select(o.c.order_id, o.c.customer_id, o.c.placed_at, o.c.lojal_message_id,
                                   lines.c.quantity, lines.c.unit_price)
                      .join(lines, lines.c.order_id == o.c.order_id)
                      .where(o.c.placed_at >= since, o.c.placed_at < until, o.c.customer_id.in_(customers)))
    rows["placed_at"] = pd.to_datetime(rows["placed_at"])
    prices, where = np.unique(rows["unit_price"].to_numpy(dtype=float), return_inverse=True)
    cents = np.array([int(_money(p).scaleb(2)) for p in prices], dtype=np.int64)[where.reshape(-1)]
    rows = rows.assign(cents=cents * rows["quantity"].to_numpy(dtype=np.int64))
    heads = rows.drop_duplicates("order_id").set_index("order_id")
    orders = heads[["customer_id", "placed_at", "lojal_message_id"]].assign(
        cents=rows.groupby("order_id")["cents"].sum())
    return orders.reset_index()


def _order_objects(orders: pd.DataFrame) -> list[Order]:
    if orders.empty:
        return []
    return [Order(int(oid), int(cid), placed, _revenue(cents), None if pd.isna(mid) else str(mid))
            for oid, cid, placed, mid, cents in zip(orders["order_id"], orders["customer_id"],
                                                    orders["placed_at"].dt.to_pydatetime(),
                                                    orders["lojal_message_id"], orders["cents"])]


def _revenue(cents, count: int = 1) -> Decimal:
    """Exact money from integer cents, as the sum of the orders' Decimals would be (no orders: 0)."""
    return Decimal(int(cents)).scaleb(-2) if count else Decimal(0)


def gather(engine: Engine, date_from: date, date_to: date, currency: str = "NOK", window_days: float = 5,
           use_opens: bool = False, cuped: bool = True, confidence: float = 0.95, min_sample: int = 1000) -> Report:
    start = datetime.combine(date_from, time())
    end = datetime.combine(date_to + timedelta(days=1), time()) + timedelta(days=window_days)
    with engine.connect() as conn:
        sends = _sends(conn, date_from, date_to)
        orders = _orders(conn, start - timedelta(days=PRE_PERIOD_DAYS), end, date_from, date_to)
        events = _events(conn, date_from, date_to)
    days, by_id = _funnel(sends, events)
    placed = orders["placed_at"]
    _credit(days, by_id, sends, events, _order_objects(orders[((placed >= start) & (placed < end)).to_numpy()]),
            window_days, use_opens)
    observed = _observations(sends, orders, window_days)
    by_campaign: dict[str, list] = defaultdict(list)
    for r, observation in zip(sends, observed):
        by_campaign[r.campaign_id].append((r, observation))
    campaigns = [CampaignReport(cid, dict(sorted(d.items())), *_effects(by_campaign[cid], confidence, cuped, min_sample))
                 for cid, d in sorted(days.items())]
    return Report(date_from, date_to, currency, window_days, campaigns)


def _funnel(sends: list, events: list) -> tuple[dict[str, dict[date, DayRow]], dict]:
    """Per campaign and night: sent, then each event once per message; and the sends by message id."""
    by_id = {r.message_id: r for r in sends}
    days: dict[str, dict[date, DayRow]] = defaultdict(lambda: defaultdict(DayRow))
    for r in sends:
        if r.state == "sent":
            days[r.campaign_id][r.run_date].counts["sent"] += 1
        else:
            days[r.campaign_id]  # a campaign with only held-out rows still appears
    _count_events(events, by_id, days)
    return days, by_id


def _credit(days, by_id: dict, sends: list, events: list, orders: list[Order], window_days: float,
            use_opens: bool) -> None:
    """Each order's conversion and revenue on the day row of the e-mail it is attributed to."""
    send_map = {r.message_id: Send(r.message_id, r.campaign_id, r.customer_id, r.variant or "", r.accepted_at)
                for r in sends if r.state == "sent"}
    touches = [Touch(e.message_id, {"clicked": "click", "opened": "open"}[e.event], e.occurred_at, bool(e.machine_open))
               for e in events if e.event in ("clicked", "opened") and e.occurred_at is not None]
    for credit in attribute(orders, send_map, touches, window_days, use_opens):
        row = days[credit.campaign_id][by_id[credit.message_id].run_date]
        row.conversions += 1
        row.revenue += credit.revenue


def _count_events(events, by_id, days) -> None:
    seen: set[tuple[str, str]] = set()
    for e in events:
        column = _EVENT_COLUMN.get(e.event)
        if column is None or (e.event == "opened" and e.machine_open) or (e.message_id, column) in seen:
            continue
        seen.add((e.message_id, column))  # each message counts once per step of the funnel
        send = by_id[e.message_id]
        days[send.campaign_id][send.run_date].counts[column] += 1


def _observations(sends: list, orders: pd.DataFrame, window_days: float) -> list[Observation]:
    """Per send, in order: converted (ordered within `window_days` from the start of its night),
    that revenue, and the customer's spend in the PRE_PERIOD_DAYS before it (CUPED's covariate); the
    sends joined to their customers' orders at once, money summed in integer cents."""
    if not sends:
        return []
    nights = pd.to_datetime(pd.Series([r.run_date for r in sends]))
    frame = pd.DataFrame({"send": np.arange(len(sends)), "customer_id": [r.customer_id for r in sends],
                          "night": nights.to_numpy()})
    joined = frame.merge(orders[["customer_id", "placed_at", "cents"]], on="customer_id")
    placed, night = joined["placed_at"], joined["night"]
    after = ((placed >= night) & (placed < night + pd.Timedelta(timedelta(days=window_days)))).to_numpy()
    before = ((placed >= night - pd.Timedelta(days=PRE_PERIOD_DAYS)) & (placed < night)).to_numpy()
    cents, send = joined["cents"].to_numpy(dtype=np.int64), joined["send"].to_numpy()
    bought, revenue = _per_send(send[after], cents[after], len(sends))
    had, pre = _per_send(send[before], cents[before], len(sends))
    return [Observation("mailed" if r.state == "sent" else "held_out", bool(b), _revenue(v, b), _revenue(p, h))
            for r, b, v, h, p in zip(sends, bought, revenue, had, pre)]


def _per_send(send: np.ndarray, cents: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Orders and their cents per send (0..count-1), summed exactly in integers."""
    totals = np.zeros(count, np.int64)
    np.add.at(totals, send, cents)
    return np.bincount(send, minlength=count), totals


def _effects(rows: list, confidence, cuped, min_sample):
    """One campaign's lift (mailed against held out) and, with arms, its A/B comparison. `rows`:
    (send, its observation)."""
    observations = [o for _, o in rows]
    arm_rows = [Observation(r.variant or "", o.converted, o.revenue, o.pre) for r, o in rows if o.group == "mailed"]
    arms = None
    if len({o.group for o in arm_rows}) > 1:
        arms = compare_arms(arm_rows, confidence, min_sample)
    return lift(observations, confidence, cuped), arms


# --- HTML ----------------------------------------------------------------------------------------

COLOURS = {"sent": "#1f5f8b", "delivered": "#3b8bc2", "opened": "#6fb1d9", "clicked": "#2e9e6b",
           "bounced": "#c0392b", "unsubscribed": "#e67e22", "complained": "#8e44ad", "revenue": "#2e9e6b"}


def _e(value) -> str:
    return html.escape(str(value))


def money_text(value: Decimal, currency: str) -> str:
    return f"{value.quantize(CENT):,.2f} {currency}".replace(",", "\u202f")


def funnel_chart(campaign: CampaignReport) -> str:
    """Grouped bars per day: one bar per funnel step, to one scale."""
    days = list(campaign.days.items())
    largest = max([1] + [row.counts[k] for _, row in days for k in FUNNEL])
    bar, gap, height = 9, 14, 160
    width = max(320, len(days) * (len(FUNNEL) * bar + gap) + 40)
    parts = [f'<svg class="funnel" role="img" aria-label="daily funnel" width="{width}" height="{height + 30}" '
             f'viewBox="0 0 {width} {height + 30}" xmlns="http://www.w3.org/2000/svg">']
    for i, (day, row) in enumerate(days):
        x0 = 30 + i * (len(FUNNEL) * bar + gap)
        for j, key in enumerate(FUNNEL):
            h = round(height * row.counts[key] / largest, 1)
            parts.append(f'<rect data-day="{day}" data-step="{key}" data-value="{row.counts[key]}" x="{x0 + j * bar}" '
                         f'y="{height - h}" width="{bar - 1}" height="{h}" fill="{COLOURS[key]}">'
                         f"<title>{day} {key}: {row.counts[key]}</title></rect>")
        parts.append(f'<text x="{x0}" y="{height + 16}" font-size="10">{day.strftime("%d.%m")}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span style="margin-right:.8rem"><span style="display:inline-block;width:.7rem;height:.7rem;'
                     f'background:{COLOURS[k]}"></span> {k}</span>' for k in FUNNEL)
    return "".join(parts) + f'<div class="legend" style="font-size:.8rem">{legend}</div>'


def revenue_chart(campaign: CampaignReport, currency: str) -> str:
    days = list(campaign.days.items())
    largest = max([Decimal(1)] + [row.revenue for _, row in days])
    bar, height = 24, 120
    width = max(320, len(days) * (bar + 8) + 40)
    parts = [f'<svg class="revenue" role="img" aria-label="attributed revenue per day" width="{width}" '
             f'height="{height + 30}" xmlns="http://www.w3.org/2000/svg">']
    for i, (day, row) in enumerate(days):
        h = float(Decimal(height) * row.revenue / largest)
        parts.append(f'<rect data-day="{day}" data-value="{row.revenue.quantize(CENT)}" x="{30 + i * (bar + 8)}" '
                     f'y="{height - h:.1f}" width="{bar}" height="{h:.1f}" fill="{COLOURS["revenue"]}">'
                     f"<title>{day}: {_e(money_text(row.revenue, currency))}</title></rect>")
    parts.append("</svg>")
    return "".join(parts)


def lift_chart(report: Report) -> str:
    """Incremental revenue per recipient with its interval, one line per campaign, zero marked."""
    rows = [(c.campaign_id, c.lift.revenue_per_recipient) for c in report.campaigns if c.lift.revenue_per_recipient]
    if not rows:
        return '<p class="muted">No campaign had both mailed and held-out customers in this period.</p>'
    bound = max(max(abs(i.low), abs(i.high)) for _, i in rows) or Decimal(1)
    width, left, row_h = 560, 140, 28
    scale = lambda v: left + float((v + bound) / (2 * bound)) * (width - left - 20)  # noqa: E731
    parts = [f'<svg class="lift" role="img" aria-label="lift with interval" width="{width}" '
             f'height="{len(rows) * row_h + 20}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{scale(0):.1f}" x2="{scale(0):.1f}" y1="0" y2="{len(rows) * row_h}" stroke="#999" '
             'stroke-dasharray="3,3"/>']
    for i, (cid, iv) in enumerate(rows):
        y = i * row_h + 14
        colour = "#2e9e6b" if iv.low > 0 else ("#c0392b" if iv.high < 0 else "#555")
        parts.append(f'<text x="0" y="{y + 4}" font-size="12">{_e(cid)}</text>'
                     f'<line data-campaign="{_e(cid)}" x1="{scale(iv.low):.1f}" x2="{scale(iv.high):.1f}" y1="{y}" '
                     f'y2="{y}" stroke="{colour}" stroke-width="3"/>'
                     f'<circle cx="{scale(iv.estimate):.1f}" cy="{y}" r="5" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _interval_text(iv, currency: str | None) -> str:
    if iv is None:
        return "n/a (no held-out group)"
    if currency:
        return (f"{money_text(iv.estimate, currency)} "
                f"({money_text(iv.low, currency)} to {money_text(iv.high, currency)})")
    return f"{float(iv.estimate) * 100:+.2f} pts ({float(iv.low) * 100:+.2f} to {float(iv.high) * 100:+.2f})"


def render_html(report: Report) -> str:
    cur = report.currency
    head = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lojal report "
            f"{report.date_from} – {report.date_to}</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#222}"
            "table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border-bottom:1px solid #ddd;padding:.25rem .6rem;"
            "text-align:right}th:first-child,td:first-child{text-align:left}.muted{color:#777}"
            "section{margin-bottom:2.5rem}</style></head><body>")
    parts = [head, f"<h1>E-mail report {report.date_from} – {report.date_to}</h1>",
             f'<p class="muted">Attributed: orders within {report.window_days:g} days of a click on the e-mail. '
             "Incremental: mailed minus held-out customers, with a 95% interval (see docs/tracking.md).</p>",
             "<h2>Lift: incremental revenue per recipient</h2>", lift_chart(report), _summary_table(report)]
    for c in report.campaigns:
        parts.append(f'<section class="campaign" data-campaign="{_e(c.campaign_id)}"><h2>{_e(c.campaign_id)}</h2>')
        parts.append("<h3>Daily funnel</h3>" + funnel_chart(c) + _day_table(c, cur))
        parts.append("<h3>Attributed revenue per day</h3>" + revenue_chart(c, cur))
        if c.arms is not None:
            parts.append(_arms_table(c.arms, cur))
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)


def _summary_table(report: Report) -> str:
    cur = report.currency
    rows = ["<table class=\"summary\"><tr><th>campaign</th><th>sent</th><th>held out</th><th>conversions (attributed)"
            "</th><th>revenue (attributed)</th><th>conversion lift</th><th>revenue lift per recipient</th>"
            "<th>incremental revenue</th></tr>"]
    for c in report.campaigns:
        inc = c.lift.incremental_revenue
        rows.append(f'<tr data-campaign="{_e(c.campaign_id)}"><td>{_e(c.campaign_id)}</td><td>{c.total("sent")}</td>'
                    f"<td>{c.lift.held_out.recipients}</td><td>{c.conversions}</td>"
                    f"<td>{_e(money_text(c.revenue, cur))}</td><td>{_e(_interval_text(c.lift.conversion_rate, None))}</td>"
                    f"<td>{_e(_interval_text(c.lift.revenue_per_recipient, cur))}</td>"
                    f"<td>{_e(money_text(inc, cur)) if inc is not None else 'n/a'}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _day_table(c: CampaignReport, cur: str) -> str:
    rows = ["<table class=\"days\"><tr><th>night</th>" + "".join(f"<th>{k}</th>" for k in FUNNEL)
            + "<th>converted</th><th>revenue</th></tr>"]
    for day, row in c.days.items():
        rows.append(f"<tr><td>{day}</td>" + "".join(f"<td>{row.counts[k]}</td>" for k in FUNNEL)
                    + f"<td>{row.conversions}</td><td>{_e(money_text(row.revenue, cur))}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _arms_table(arms, cur: str) -> str:
    rows = ["<h3>A/B arms</h3><table class=\"arms\"><tr><th>arm</th><th>recipients</th><th>conversion rate</th>"
            "<th>revenue per recipient</th></tr>"]
    for a in arms.arms:
        rows.append(f"<tr><td>{_e(a.group)}</td><td>{a.recipients}</td><td>{float(a.conversion_rate) * 100:.2f}%</td>"
                    f"<td>{_e(money_text(a.revenue_per_recipient, cur))}</td></tr>")
    rows.append(f'</table><p class="verdict">{_e(arms.why)}</p>')
    return "".join(rows)


# --- after each night: Prefect artifacts and the page, built from the store ------------------------

def nights_markdown(report: Report) -> str:
    """Markdown for a Prefect artifact: per campaign over the report's nights, the funnel, attributed
    conversions and revenue, and the lift with its interval."""
    cur = report.currency
    lines = [f"# E-mail results {report.date_from} – {report.date_to}", "",
             "| campaign | sent | delivered | opened | clicked | bounced | unsubscribed | complained | converted "
             "| revenue | revenue lift / recipient (95%) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in report.campaigns:
        lift = _interval_text(c.lift.revenue_per_recipient, cur)
        lines.append(f"| {c.campaign_id} | " + " | ".join(str(c.total(k)) for k in FUNNEL)
                     + f" | {c.conversions} | {money_text(c.revenue, cur)} | {lift} |")
    if not report.campaigns:
        lines.append("| (no sends in these nights) | | | | | | | | | | |")
    return "\n".join(lines)


def write_night_report(engine: Engine, state_dir, run_date: date, config, nights: int = 7):
    """`<state>/runs/<night>/tracking.html` for the last `nights` nights up to `run_date`, its
    markdown, and the `Report` both are made from. Built from the store (ledger, events, orders), never from one run's counters, so a
    re-run of a night that sends nothing new shows the same numbers instead of an empty page."""
    from pathlib import Path

    t = config.tracking
    report = gather(engine, run_date - timedelta(days=nights - 1), run_date, config.brand.currency,
                    t.attribution_window_days, t.attribute_opens, True, t.ab_confidence, t.ab_min_sample)
    folder = Path(state_dir) / "runs" / run_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "tracking.html"
    partial = folder / f".tracking.html.{os.getpid()}.tmp"
    partial.write_text(render_html(report), encoding="utf-8")
    os.replace(partial, page)  # readers see the previous page or this one, never half of one
    return page, nights_markdown(report) + f"\n\nThe report with charts: `{page}`.", report
