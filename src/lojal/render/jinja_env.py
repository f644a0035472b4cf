"""The sandboxed Jinja2 environments templates run in, and the filters marketers may use.

Filters (the whole documented set, see docs/templates.md):

    {{ amount | money(currency) }}      1299 | money("NOK") -> "kr 1 299,00" (nb), "1.299,00 kr." (da, DKK)
    {{ value | number }}                 1299.5 -> "1 299,5" (nb); number(2) fixes two decimals
    {{ d | date }}                       date/datetime -> "24. nov. 2026" (nb); date("long"|"short"|"full")
    {{ url | utm("slot", key=value) }}   adds query parameters and utm_source/medium/campaign/content,
                                         and lojal_mid=<message id> (lojal.tracking.links) for attribution
    {{ rec | reason }}                   a recommendation's reason in the recipient's language

One environment exists per (locale, autoescape): HTML bodies are autoescaped, subject, preheader and
the plain-text part are not (they are not HTML). Every environment is sandboxed and uses
StrictUndefined, so a misspelt variable fails loudly instead of printing nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache, wraps
from itertools import islice
from string import Formatter
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from jinja2 import StrictUndefined, Template, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer
from markupsafe import Markup, escape

from lojal.config import Tracking
from lojal.tracking.links import with_message_id

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
        message = context.get("message")
        message_id = message.get("id") if type(message) is dict else None
        # the message id last, per message: the shared cache above keeps serving everyone else
        return with_message_id(tracked(str(url), campaign_id, str(slot), extra), str(message_id or ""))

    return utm


def reason_placeholder_problem(text: str) -> str | None:
    """Why a reason text's `{placeholders}` are not allowed, or None: only plain names such as
    `{product}`, no attributes, indexes, conversions or format specs (`{product.__class__}`)."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in Formatter().parse(text) if name is not None]
    except ValueError as exc:
        return f"broken {{placeholder}}: {exc}"
    for name, spec, conversion in fields:
        if not name.isidentifier() or spec or conversion:
            return (f"placeholder {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                    "is not allowed: use a plain name such as {product}")
    return None


def _reason_filter(reason_text: ReasonLookup, autoescape: bool,
                   env: SandboxedEnvironment) -> Callable[[Mapping[str, Any]], str]:
    @lru_cache(maxsize=65536)
    def formatted(code: str, params: tuple[tuple[str, Any], ...], english: str) -> str:
        text = reason_text(code)
        if text is None:
            return escape(english) if autoescape else english
        problem = reason_placeholder_problem(text)
        if problem:
            raise SecurityError(f"reason '{code}': {problem}")
        # Formatted by the sandbox's formatter, like str.format inside a template.
        template = Markup(escape(text)) if autoescape else text
        return env.wrap_str_format(template.format)(**dict(params))

    def reason(recommendation: Mapping[str, Any]) -> str:
        params = recommendation.get("reason_params") or {}
        return formatted(recommendation.get("reason_code", ""), tuple(sorted(params.items())),
                         recommendation.get("reason", ""))

    return reason


# -- Limits per e-mail ------------------------------------------------------------------------
# A template is code a marketer (or an attacker with write access to templates/) controls, run
# once per recipient. Rendering one e-mail is bounded in time, loop iterations and size: loops
# (every `for`), calls and filters check a budget; `*`, `**`, `+` and `%` refuse results over the
# size limit before computing them; numbers that size strings (center(10**9), "%999999999d") are
# refused. Exceeding a limit raises TemplateLimitError, which fails that one e-mail.
MAX_SECONDS = 2.0
MAX_ITERATIONS = 200_000
MAX_CHARS = 2_000_000  # any one value, and an e-mail's output
MAX_SIZE_ARGUMENT = 100_000  # an integer passed to a string method or filter (widths, counts)
LOOP_GUARD = "__lojal_loop"
SIZE_GUARD = "__lojal_size"
# A width or precision of six digits or more, or one taken from the arguments (`%*d`, `{:{}}`).
_HUGE_WIDTH = re.compile(r"(?:%[-+ #0]*|[:.<>^=])\d{6,}|%[-+ #0]*\*|%[-+ #0]*\d*\.\*|\{[^{}]*:[^{}]*\{")


class TemplateLimitError(SecurityError):
    """Rendering one e-mail went over a limit (time, iterations, size)."""


@dataclass
class RenderBudget:
    deadline: float
    iterations: int = MAX_ITERATIONS

    calls: int = 0

    def tick(self, count: int = 1) -> None:
        """Spend `count` loop iterations (0 for a call); the clock is read every 64th time."""
        self.iterations -= count
        if self.iterations < 0:
            raise TemplateLimitError(f"more than {MAX_ITERATIONS:,} loop iterations in one e-mail")
        self.calls += 1
        if self.calls & 63 == 0:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"rendering one e-mail took longer than {MAX_SECONDS:g} s")


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("lojal_render_budget", default=None)


@contextmanager
def render_budget() -> Iterator[RenderBudget]:
    """A fresh budget for rendering one e-mail (all its parts)."""
    budget = RenderBudget(time.monotonic() + MAX_SECONDS)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _budget() -> RenderBudget:
    budget = _BUDGET.get()
    if budget is None:  # rendering outside render_budget(): give this context its own
        budget = RenderBudget(time.monotonic() + MAX_SECONDS)
        _BUDGET.set(budget)
    return budget


def render_bounded(template: Template, data: Mapping[str, Any]) -> str:
    """`template.render(data)`, stopping once the output passes MAX_CHARS or the budget ends."""
    budget = _budget()
    context = template.new_context(dict(data))
    try:
        parts: list[str] = []
        total = 0
        chunks = template.root_render_func(context)
        while True:  # in blocks: the length check runs in C, and stops a runaway loop early
            block = list(islice(chunks, 64))
            if not block:
                return "".join(parts)
            total += sum(map(len, block))
            if total > MAX_CHARS:
                error = TemplateLimitError(f"one e-mail's output is over {MAX_CHARS // 1_000_000} million characters")
                frame = getattr(chunks, "gi_frame", None)
                error.template_lineno = template.get_corresponding_lineno(frame.f_lineno) if frame else None
                raise error
            parts += block
            if len(block) == 64:
                budget.check_time()
    except Exception:
        return template.environment.handle_exception()


def loop_guard(iterable: Any) -> Iterator[Any]:
    """Wraps the iterable of every `for` in a template: each iteration spends the budget."""
    budget = _budget()
    for item in iterable:
        budget.tick()
        yield item


def size_guard(value: Any) -> Any:
    """Wraps every `~` in a template."""
    return _check_size(value)


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, bytes)) and len(value) > MAX_CHARS:
        raise TemplateLimitError(f"a value of {len(value):,} characters or items is over the limit of {MAX_CHARS:,}")
    return value


def _check_arguments(args: tuple, kwargs: Mapping[str, Any]) -> None:
    """Numbers that size a string or list (widths, counts, repeats) stay small."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE_ARGUMENT:
            raise TemplateLimitError(f"the number {value} is too large here (at most {MAX_SIZE_ARGUMENT:,})")


def _refuse_huge_width(template: Any) -> None:
    if isinstance(template, str) and _HUGE_WIDTH.search(template):
        raise TemplateLimitError("a format width or precision of six or more digits, or one taken from the arguments, is not allowed")


_SIZING_TYPES = (str, bytes, list, tuple, dict)


def bounded_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that spends the budget and refuses results over the size limit; Jinja's own
    filters also refuse size-giving numbers (center(10**9)) and huge format widths."""
    skip = 2 if getattr(function, "jinja_pass_arg", None) is not None else 1  # (context,) value, arguments
    builtin = function.__module__ == "jinja2.filters"

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _budget().tick(0)
        if builtin:
            if function.__name__ == "do_format" and len(args) >= skip:
                _refuse_huge_width(args[skip - 1])  # its arguments are values, not sizes
            else:
                _check_arguments(args[skip:], kwargs)
        return _check_size(function(*args, **kwargs))

    return bounded


class _SizeGuards(NodeTransformer):
    """`a ~ b` (and string joins Jinja builds from it) checked against the size limit, so that
    doubling a string in a loop stops at the limit instead of exhausting memory."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, SIZE_GUARD, [], [], None, None).set_lineno(node.lineno)


def _sized(operator: str, left: Any, right: Any) -> int:
    """The size of `left operator right` when it builds a sequence, estimated before computing it."""
    sizes = [len(v) for v in (left, right) if isinstance(v, (str, list, tuple, bytes))]
    counts = [v for v in (left, right) if isinstance(v, int) and not isinstance(v, bool)]
    if operator == "*" and sizes and counts:
        return sizes[0] * max(counts[0], 0)
    if operator == "+" and len(sizes) == 2:
        return sum(sizes)
    return 0


class DataSandbox(SandboxedEnvironment):
    """The sandbox, bounded per e-mail (see the limits above), reading `x.key` on plain dicts
    (all template data) as the item first.

    Jinja tries the Python attribute first, which for dicts fails with an exception on every
    `customer.first_name` (the costliest part of a render) and makes `order.items` the dict method.
    Dict items are data, so returning them is as safe as `x['key']`; everything else is checked by
    the sandbox as usual.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if _sized(operator, left, right) > MAX_CHARS:
            raise TemplateLimitError(f"'{operator}' would build a value over the limit of {MAX_CHARS:,}")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64 \
                and isinstance(left, (int, float)) and abs(left) > 1:
            raise TemplateLimitError("a power with an exponent over 64 is not allowed")
        if operator == "%" and isinstance(left, str):
            _refuse_huge_width(left)
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _budget().tick(0)
        if isinstance(getattr(__obj, "__self__", None), _SIZING_TYPES) or __obj is range \
                or getattr(__obj, "__name__", "") == "safe_range":
            _check_arguments(args, kwargs)
        return _check_size(SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = getattr(value, "__self__", "")

        def checked(*args: Any, **kwargs: Any) -> str:
            _refuse_huge_width(template)
            return wrapped(*args, **kwargs)

        return checked

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        for loop in source.find_all(nodes.For):  # every loop spends the render budget
            loop.iter = nodes.Filter(loop.iter, LOOP_GUARD, [], [], None, None).set_lineno(loop.iter.lineno)
        source = _SizeGuards().visit(source)
        return super()._generate(source, name, filename, defer_init)


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
        reason=_reason_filter(reason_text, autoescape=html, env=env),
    )
    # Jinja's own filters can size strings from numbers (center, indent, wordwrap, format): bounded.
    # Ours return short formatted text and are left as they are (the costliest part of a render).
    env.filters.update({name: bounded_filter(f) for name, f in env.filters.items()
                        if getattr(f, "__module__", "") == "jinja2.filters"})
    env.filters[LOOP_GUARD] = loop_guard
    env.filters[SIZE_GUARD] = size_guard
    return env
