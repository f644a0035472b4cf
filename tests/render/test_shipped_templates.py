"""The shipped templates: every campaign in every locale renders, carries the legally required
footer and tracked links, and the compile-once path equals compiling MJML per recipient."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from lojal.config import LOCALES
from lojal.render.samples import SAMPLE_CUSTOMERS, sample_context, sample_contexts

CAMPAIGNS = ["post_purchase", "welcome", "replenishment", "tier_upgrade", "survey", "birthday", "vip_care", "win_back",
             "last_chance"]


def test_every_enabled_campaign_has_a_template_in_every_locale(shipped, shipped_config):
    expected = {(c.template, locale) for c in shipped_config.campaigns.enabled for locale in LOCALES}
    assert set(shipped.compiled) == expected
    assert sorted(c.id for c in shipped_config.campaigns.enabled) == sorted(CAMPAIGNS)


@pytest.mark.parametrize("campaign_id", CAMPAIGNS)
def test_each_campaign_renders_for_every_sample_with_footer_and_text(shipped, shipped_config, campaign_id):
    campaign = shipped_config.campaign(campaign_id)
    for label, context in sample_contexts(shipped_config, campaign):
        locale = context["customer"]["locale"]
        email = shipped.render(campaign.template, locale, context)
        unsubscribe = context["message"]["unsubscribe_url"]
        assert f'href="{unsubscribe}"' in email.html, label
        assert html.escape(shipped_config.brand.postal_address) in email.html
        assert shipped_config.brand.postal_address in email.text
        assert unsubscribe in email.text
        assert context["customer"]["first_name"] in email.subject
        assert email.preheader and "\n" not in email.subject
        assert "<" not in email.text and "{{" not in email.text and "{%" not in email.text


def test_locale_strings_and_money_formats_differ_per_language(shipped, shipped_config):
    campaign = shipped_config.campaign("post_purchase")
    subjects = {}
    for sample in SAMPLE_CUSTOMERS:
        context = sample_context(campaign, sample)
        locale = sample.customer["locale"]
        email = shipped.render("post_purchase", locale, context)
        subjects[locale] = email.subject
        total = context["last_order"]["total"]
        if locale == "da":
            assert "kr." in email.text and f"{total:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".") in email.text
        if locale == "en":
            assert f"€{total:.2f}" in email.text  # the English sample customer lives in the euro market
        if locale == "nb":  # brand.money_formats.nb: '¤ #,##0.00'
            amount = f"{total:,.2f}".replace(",", "\u00a0").replace(".", ",")
            assert f"kr\u00a0{amount}" in email.text, email.text
    assert subjects["en"].startswith("Thank you") and subjects["nb"].startswith("Takk")
    assert subjects["sv"].startswith("Tack") and subjects["da"].startswith("Tak for")


def test_every_web_link_carries_utm_parameters_with_campaign_and_slot(shipped, shipped_config):
    campaign = shipped_config.campaign("post_purchase")
    context = sample_context(campaign, SAMPLE_CUSTOMERS[0])
    email = shipped.render("post_purchase", "en", context)
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', email.html)]
    contents = set()
    for href in hrefs:
        if href == context["message"]["unsubscribe_url"]:
            continue
        query = parse_qs(urlsplit(href).query)
        assert query["utm_source"] == ["lojal"] and query["utm_medium"] == ["email"], href
        assert query["utm_campaign"] == ["post_purchase"], href
        contents.update(query["utm_content"])
    assert {"header", "cta", "footer", "product-1", "product-4"} <= contents


def test_survey_links_carry_order_and_rating(shipped, shipped_config):
    campaign = shipped_config.campaign("survey")
    context = sample_context(campaign, SAMPLE_CUSTOMERS[1])
    email = shipped.render("survey", "nb", context)
    ratings = {}
    for href in map(html.unescape, re.findall(r'href="([^"]+/survey\?[^"]+)"', email.html)):
        query = parse_qs(urlsplit(href).query)
        assert query["order"] == [context["last_order"]["id"]]
        ratings[query["rating"][0]] = query["utm_content"][0]
    assert ratings == {str(n): f"rating-{n}" for n in range(1, 6)}


def test_recommendation_reasons_are_translated(shipped, shipped_config):
    campaign = shipped_config.campaign("replenishment")
    sample = next(s for s in SAMPLE_CUSTOMERS if s.customer["locale"] == "sv")
    context = sample_context(campaign, sample)
    context["recommendations"][0].update(reason_code="reorder_due", reason_params={"days": 30, "product": "Tvål"})
    email = shipped.render("replenishment", "sv", context)
    assert "Du brukar köpa Tvål ungefär var 30:e dag" in email.text


def _normalized(document: str) -> str:
    """Equal for documents a browser and Outlook treat the same: whitespace collapsed, character
    references resolved, and adjacent Outlook conditionals merged (the compiler merges them when no
    Jinja statement separates them any more)."""
    document = re.sub(r"<!\[endif]-->\s*?<!--\[if mso \| IE]>", "", document)
    document = html.unescape(document)
    document = re.sub(r">\s+<", "><", document)
    return re.sub(r"\s+", " ", document).strip()


@pytest.mark.parametrize("campaign_id", CAMPAIGNS)
def test_compile_once_equals_compiling_per_recipient(shipped, shipped_config, campaign_id):
    campaign = shipped_config.campaign(campaign_id)
    for sample in SAMPLE_CUSTOMERS:
        context = sample_context(campaign, sample)
        locale = sample.customer["locale"]
        once = shipped.render(campaign.template, locale, context).html
        per_recipient = shipped.render_html_compiling_per_recipient(campaign.template, locale, context)
        assert _normalized(once) == _normalized(per_recipient), f"{campaign_id}/{sample.key}"


def test_quotes_in_data_break_only_the_per_recipient_path(shipped, shipped_config):
    campaign = shipped_config.campaign("win_back")
    context = sample_context(campaign, SAMPLE_CUSTOMERS[0])
    context["recommendations"][0]["title"] = 'Mug "Fjord" 0,3 l'
    once = shipped.render("win_back", "en", context).html
    per_recipient = shipped.render_html_compiling_per_recipient("win_back", "en", context)
    assert 'alt="Mug &#34;Fjord&#34; 0,3 l"' in once
    # MJML re-parsed the escaped attribute and wrote the quotes back raw: alt="Mug " ends the attribute.
    assert 'alt="Mug "Fjord" 0,3 l"' in per_recipient


def test_brand_comes_from_config_even_when_the_caller_passes_one(shipped, shipped_config):
    campaign = shipped_config.campaign("survey")
    context = sample_context(campaign, SAMPLE_CUSTOMERS[0])
    context["brand"] = shipped_config.brand.model_dump(mode="json")  # website_url ends with "/"
    email = shipped.render("survey", "en", context)
    assert "https://nordlys.example/survey?order=" in email.text and "example//survey" not in email.text


def test_brand_values_are_escaped_where_they_are_written_in(shipped_paths, shipped_config, one_campaign):
    from lojal.render import load_templates

    brand = shipped_config.brand.model_copy(update={"name": 'Nordlys "Hjem" & Co <AS>'})
    config = one_campaign(shipped_config.model_copy(update={"brand": brand}), "birthday")
    templates = load_templates(shipped_paths, config)
    email = templates.render("birthday", "da", sample_context(config.campaign("birthday"), SAMPLE_CUSTOMERS[4]))
    assert 'alt="Nordlys &#34;Hjem&#34; &amp; Co &lt;AS&gt;"' in email.html
    assert "Nordlys \"Hjem\" & Co <AS>" in email.text and "<AS>" not in email.html


def test_tier_upgrade_is_only_previewed_for_customers_who_moved_up(shipped_config):
    from lojal.render.samples import is_upgrade, samples_for

    tiers = [t.name for t in shipped_config.loyalty.tiers]
    campaign = shipped_config.campaign("tier_upgrade")
    shown = samples_for(shipped_config, campaign)
    assert shown and all(is_upgrade(s.customer, tiers) for s in shown)
    assert "nb-solveig" not in {s.key for s in shown}  # Bronze, the lowest tier: never congratulated
    assert {s.customer["locale"] for s in shown} == set(LOCALES)
    assert len(samples_for(shipped_config, shipped_config.campaign("birthday"))) == len(SAMPLE_CUSTOMERS)
    assert not is_upgrade({"tier": "Silver", "previous_tier": "Gold"}, tiers)
    assert not is_upgrade({"tier": "Bronze", "previous_tier": None}, tiers)
    assert is_upgrade({"tier": "Silver", "previous_tier": None}, tiers)


def test_last_chance_shows_the_personal_offer_only_when_there_is_one(shipped, shipped_config):
    campaign = shipped_config.campaign("last_chance")
    sample = next(s for s in SAMPLE_CUSTOMERS if s.customer["locale"] == "da")
    context = sample_context(campaign, sample)
    code = context["offer"]["code"]
    assert code.startswith("BACK-")
    email = shipped.render("last_chance", "da", context)
    assert f"<strong>{code}</strong>" in email.html and "Din personlige kode" in email.text
    del context["offer"]
    without = shipped.render("last_chance", "da", context)
    assert "BACK-" not in without.html and "personlige kode" not in without.text
