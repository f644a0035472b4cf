"""The sandboxed Jinja2 environments templates run in, and the filters marketers may use.

Filters (the whole documented set, see docs/templates.md):

    {{ amount | money(currency) }}      1299 | money("NOK") -> "kr 1 299,00" (nb), "1.299,00 kr." (da, DKK)
    {{ value | number }}                 1299.5 -> "1 299,5" (nb); number(2) fixes two decimals
    {{ d | date }}                       date/datetime -> "24. nov. 2026" (nb); date("long"|"short"|"full")
    {{ url | utm("slot", key=value) }}   adds query parameters and utm_source/medium/campaign/content
    {{ rec | reason }}                   a recommendation's reason in the recipient's language

One environment exists per (locale, autoescape): HTML bodies are autoescaped, subject, preheader and
the plain-text part are not (they are not HTML). Every environment is sandboxed and uses
StrictUndefined, so a misspelt variable fails loudly instead of printing nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from jinja2 import StrictUndefined, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from lojal.config import Tracking

BABEL_LOCALES = {"en": "en_GB", "nb": "nb_NO", "sv": "sv_SE", "da": "da_DK"}

ReasonLookup = Callable[[str], str | None]


def babel_locale(locale: str) -> Locale:
    return Locale.parse(BABEL_LOCALES.get(locale, locale))


def _money_formatter(locale: Locale, pattern: str | None) -> Callable[[float, str], str]:
    # A shop's own pattern keeps its decimals (currency_digits off) and never breaks a line
    # between sign and amount (no-break spaces, as CLDR's own patterns have).
    pattern = pattern.replace(" ", "\u00a0") if pattern else None

    # Products and order totals repeat across thousands of recipients; Babel's pattern
    # application is the slowest part of a render, so identical amounts are formatted once.
    @lru_cache(maxsize=65536)
    def money(amount: float, currency: str) -> str:
        return format_currency(amount, currency, format=pattern, locale=locale, currency_digits=pattern is None)

    return money


def _number_formatter(locale: Locale) -> Callable[[float, int | None], str]:
    @lru_cache(maxsize=65536)
    def number(value: float, decimals: int | None = None) -> str:
        if decimals is None:
            return format_decimal(value, locale=locale)
        pattern = "#,##0." + "0" * decimals if decimals > 0 else "#,##0"
        return format_decimal(round(value, decimals), format=pattern, locale=locale)

    return number


def _date_formatter(locale: Locale) -> Callable[[date, str], str]:
    @lru_cache(maxsize=4096)
    def format_day(day: date, style: str = "medium") -> str:
        return format_date(day, format=style, locale=locale)

    def date_filter(value: date | datetime, style: str = "medium") -> str:
        day = value.date() if isinstance(value, datetime) else value
        return format_day(day, style)

    return date_filter


def add_query(url: str, params: Mapping[str, Any]) -> str:
    """`url` with `params` added to its query string (existing keys are kept, not duplicated)."""
    parts = urlsplit(str(url))
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    query += [(key, str(value)) for key, value in params.items() if key not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


def utm_params(tracking: Tracking, campaign_id: str, slot: str) -> dict[str, str]:
    return {
        "utm_source": tracking.utm_source,
        "utm_medium": tracking.utm_medium,
        "utm_campaign": campaign_id,
        "utm_content": slot,
    }


def _utm_filter(tracking: Tracking) -> Callable[..., str]:
    # A dozen links per e-mail and the same products for thousands of recipients: tracked URLs are
    # cached, which makes link tracking nearly free in the nightly run.
    @lru_cache(maxsize=65536)
    def tracked(url: str, campaign_id: str, slot: str, query: tuple[tuple[str, str], ...]) -> str:
        return add_query(url, {**dict(query), **utm_params(tracking, campaign_id, slot)})

    @pass_context
    def utm(context: Context, url: str, slot: str, **query: Any) -> str:
        campaign = context.get("campaign")
        campaign_id = campaign.get("id", "unknown") if type(campaign) is dict else "unknown"
        extra = tuple((k, str(v)) for k, v in query.items()) if query else ()
        return tracked(str(url), campaign_id, str(slot), extra)

    return utm


def _reason_filter(reason_text: ReasonLookup, autoescape: bool) -> Callable[[Mapping[str, Any]], str]:
    @lru_cache(maxsize=65536)
    def formatted(code: str, params: tuple[tuple[str, Any], ...], english: str) -> str:
        text = reason_text(code)
        if text is None:
            return escape(english) if autoescape else english
        if autoescape:
            return Markup(escape(text)).format(**dict(params))
        return text.format(**dict(params))

    def reason(recommendation: Mapping[str, Any]) -> str:
        params = recommendation.get("reason_params") or {}
        return formatted(recommendation.get("reason_code", ""), tuple(sorted(params.items())),
                         recommendation.get("reason", ""))

    return reason


class DataSandbox(SandboxedEnvironment):
    """The sandbox, reading `x.key` on plain dicts (all template data) as the item first.

    Jinja tries the Python attribute first, which for dicts fails with an exception on every
    `customer.first_name` (the costliest part of a render) and makes `order.items` the dict method.
    Dict items are data, so returning them is as safe as `x['key']`; everything else is checked by
    the sandbox as usual.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def make_environment(locale: str, tracking: Tracking, reason_text: ReasonLookup, *, html: bool,
                     money_format: str | None = None) -> SandboxedEnvironment:
    """A sandboxed, StrictUndefined environment whose filters format for `locale` (money with the
    shop's `money_format` pattern where brand.money_formats gives one, else CLDR's)."""
    env = DataSandbox(
        autoescape=html,
        undefined=StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )
    babel = babel_locale(locale)
    env.filters.update(
        money=_money_formatter(babel, money_format),
        number=_number_formatter(babel),
        date=_date_formatter(babel),
        utm=_utm_filter(tracking),
        reason=_reason_filter(reason_text, autoescape=html),
    )
    return env
