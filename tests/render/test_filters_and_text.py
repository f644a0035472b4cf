"""The documented template filters (Babel formatting per locale, UTM) and the plain-text part."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from lojal.config import Tracking
from lojal.render.jinja_env import add_query, make_environment
from lojal.render.text import text_template_from_html, tidy_text

NBSP = "\xa0"


def _render(source: str, locale: str = "en", html: bool = True, **context) -> str:
    reasons = {"popular": "Popular: {product}"}.get
    environment = make_environment(locale, Tracking(utm_source="lojal", utm_medium="email"), reasons, html=html)
    return environment.from_string(source).render(**context)


@pytest.mark.parametrize("locale, amount, currency, expected", [
    ("nb", 1299, "NOK", f"1{NBSP}299,00{NBSP}kr"),
    ("da", 1299, "DKK", f"1.299,00{NBSP}kr."),
    ("en", 12.5, "GBP", "£12.50"),
    ("sv", 1299, "SEK", f"1{NBSP}299,00{NBSP}kr"),
    ("en", 1299, "EUR", "€1,299.00"),
])
def test_money_is_formatted_per_locale(locale, amount, currency, expected):
    assert _render("{{ amount | money(currency) }}", locale, amount=amount, currency=currency) == expected


@pytest.mark.parametrize("pattern, expected", [
    ("¤ #,##0.00", f"kr{NBSP}1{NBSP}299,00"),   # Norwegian shops' custom; CLDR 47 says 1 299,00 kr
    ("¤¤ #,##0", f"NOK{NBSP}1{NBSP}299"),
])
def test_the_shop_may_set_its_money_pattern_per_locale(pattern, expected):
    environment = make_environment("nb", Tracking(utm_source="lojal", utm_medium="email"), {}.get, html=True,
                                   money_format=pattern)
    assert environment.from_string("{{ 1299 | money('NOK') }}").render() == expected


def test_numbers_and_dates_per_locale():
    assert _render("{{ 1299.5 | number }}", "nb") == f"1{NBSP}299,5"
    assert _render("{{ 1299.456 | number(2) }}", "da") == "1.299,46"
    assert _render("{{ 3 | number(0) }}", "en") == "3"
    assert _render("{{ d | date('long') }}", "nb", d=date(2026, 11, 24)) == "24. november 2026"
    assert _render("{{ d | date('long') }}", "sv", d=datetime(2026, 11, 24, 23, 0)) == "24 november 2026"
    assert _render("{{ d | date }}", "en", d=date(2026, 11, 24)) == "24 Nov 2026"


def test_utm_filter_adds_tracking_and_extra_query_keeping_existing_parameters():
    url = _render("{{ 'https://shop.example/p?id=7' | utm('product-2', ref='a b') }}", html=False,
                  campaign={"id": "win_back"})
    assert url == ("https://shop.example/p?id=7&ref=a+b&utm_source=lojal&utm_medium=email"
                   "&utm_campaign=win_back&utm_content=product-2")
    assert "&amp;utm_medium" in _render("{{ 'https://x.example' | utm('cta') }}", campaign={"id": "c"})
    assert add_query("https://x.example/?utm_source=own", {"utm_source": "lojal"}) == "https://x.example/?utm_source=own"


def test_reason_filter_translates_and_falls_back_to_english_text():
    known = {"reason_code": "popular", "reason_params": {"product": "<b>"}, "reason": "english"}
    unknown = {"reason_code": "new_code", "reason_params": {}, "reason": "Because <3"}
    assert _render("{{ r | reason }}", r=known) == "Popular: &lt;b&gt;"
    assert _render("{{ r | reason }}", html=False, r=known) == "Popular: <b>"
    assert _render("{{ r | reason }}", r=unknown) == "Because &lt;3"


def test_text_template_keeps_jinja_and_turns_markup_into_lines():
    compiled = (
        '<html><head><title>{{ subject }}</title><style>a{color:red}</style></head><body>'
        '<div style="display:none;max-height:0px">preheader text</div>'
        '<!--[if mso | IE]><table><tr><td><![endif]-->'
        '<div><p>Hi {{ customer.first_name }},</p>{% for r in items %}<div>'
        '<a href="{{ r.url }}"><img alt="pic" src="x.jpg"></a><a href="{{ r.url }}">{{ r.title }}</a>'
        '</div>{% endfor %}<p>Fish &amp; chips</p></div></body></html>'
    )
    text = text_template_from_html(compiled)
    assert "preheader" not in text and "color:red" not in text and "{{ subject }}" not in text and "pic" not in text
    rendered = tidy_text(_render(text, html=False, customer={"first_name": "Åse"},
                                 items=[{"url": "https://a.example/1", "title": "One"},
                                        {"url": "https://a.example/2", "title": "Two"}]))
    assert rendered == "Hi Åse,\n\nOne (https://a.example/1)\n\nTwo (https://a.example/2)\n\nFish & chips\n"
