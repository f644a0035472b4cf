"""config/*.yaml: typed models, every problem with file:line:col and how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lojal.config import check_config, load_config
from lojal.errors import ProjectError
from lojal.paths import Paths


def problems_after(project: Path, name: str, old: str, new: str) -> list[str]:
    path = project / "config" / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture drift: {old!r} not in {name}.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    _config, problems = check_config(Paths.resolve(project))
    return [str(p) for p in problems]


def line_of(project: Path, name: str, needle: str) -> int:
    lines = (project / "config" / f"{name}.yaml").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_shipped_config_is_valid(project):
    config = load_config(Paths.resolve(project))
    assert [c.id for c in config.campaigns.enabled][0] == "tier_upgrade"
    assert config.loyalty.tiers[0].min_spend_12m == 0


def test_unknown_key_names_the_line_and_suggests(project):
    found = problems_after(project, "campaigns", "    priority: 100", "    priorty: 100")
    line = line_of(project, "campaigns", "priorty")
    assert found == [f"config/campaigns.yaml:{line}:5: unknown key 'priorty' (did you mean 'priority'?)"]


def test_wrong_type_and_missing_key(project):
    found = problems_after(project, "campaigns", "    priority: 90", "    priority: high")
    line = line_of(project, "campaigns", "priority: high")
    assert found == [f"config/campaigns.yaml:{line}:15: campaigns.2.priority: Input should be a valid integer, unable to parse string as an integer"]


def test_problems_in_several_files_are_all_listed(project):
    problems_after(project, "brand", "primary_color: \"#1f5f8b\"", "primary_color: blue")
    found = problems_after(project, "sender", "from_email: hei@nordlys.example", "from_email: nordlys")
    assert len(found) == 2
    assert found[0] == (f"config/brand.yaml:{line_of(project, 'brand', 'primary_color')}:16: "
                        "primary_color: String should match pattern '^#[0-9a-fA-F]{6}$'")
    assert found[1].startswith("config/sender.yaml:2:13: from_email: value is not a valid email address")


def test_header_injection_in_sender_name_is_rejected(project):
    found = problems_after(project, "sender", "from_name: Nordlys Hjem", 'from_name: "Nordlys\\r\\nBcc: x@example.com"')
    assert found == ["config/sender.yaml:3:12: from_name: must not contain line breaks or control characters "
                     "(they would inject e-mail headers)"]


def test_yaml_syntax_error_and_tabs(project):
    found = problems_after(project, "tracking", "utm_medium: email", "utm_medium: [email")
    assert len(found) == 1 and found[0].startswith("config/tracking.yaml:")
    assert "YAML syntax error" in found[0]
    found = problems_after(project, "loyalty", "  - {name: Silver", "\t- {name: Silver")
    assert found[-1] == ("config/loyalty.yaml:4:1: tab character in indentation: YAML indents with spaces only; "
                         "replace the tab with spaces")


def test_missing_file_and_semantic_rules(project):
    (project / "config" / "tracking.yaml").unlink()
    found = problems_after(project, "loyalty", "min_spend_12m: 8000", "min_spend_12m: 2000")
    assert "config/tracking.yaml: missing file: create config/tracking.yaml (see docs/configuration.md)" in found
    assert any(p.startswith("config/loyalty.yaml:2:1: tiers must be listed by strictly increasing") for p in found)


def test_load_config_raises_with_every_problem(project):
    problems_after(project, "brand", "unsubscribe_url: https://nordlys.example/unsubscribe/{token}",
                   "unsubscribe_url: http://nordlys.example/unsubscribe")
    with pytest.raises(ProjectError) as caught:
        load_config(Paths.resolve(project))
    line = line_of(project, "brand", "unsubscribe_url:")
    assert str(caught.value) == (f"config/brand.yaml:{line}:18: unsubscribe_url: must be an https:// URL containing "
                                 "{token}, e.g. https://shop.example/unsubscribe/{token}")


def test_unknown_time_zone_suggests_the_nearest(project):
    found = problems_after(project, "brand", "timezone: Europe/Oslo", "timezone: Europe/Olso")
    line = line_of(project, "brand", "timezone:")
    assert found == [f"config/brand.yaml:{line}:11: timezone: unknown time zone 'Europe/Olso'; "
                     "did you mean 'Europe/Oslo'?"]


@pytest.mark.parametrize("pattern", ["#,##0.00 kr", "¤ 0.0.0", "¤ #,##0.00 ¤"])
def test_money_format_needs_one_currency_sign_and_one_amount(project, pattern):
    found = problems_after(project, "brand", 'nb: "¤ #,##0.00"', f'nb: "{pattern}"')
    line = line_of(project, "brand", "  nb:")
    assert found == [f"config/brand.yaml:{line}:3: money_formats: nb: '{pattern}' is not a currency pattern; "
                     "write ¤ for the currency and #,##0.00 for the amount, e.g. '¤ #,##0.00' or '#,##0.00 ¤'"]


def test_planning_settings_are_typed_with_file_and_line(project):
    found = problems_after(project, "campaigns", "  - {max: 1, hours: 16}", "  - {max: 0, hours: 16}")
    line = line_of(project, "campaigns", "{max: 0, hours: 16}")
    assert found == [f"config/campaigns.yaml:{line}:11: frequency_caps.0.max: Input should be greater than or equal to 1"]


def test_send_time_must_be_a_clock_time_within_72_hours(project):
    found = problems_after(project, "campaigns", 'send_time: {at: "10:00"}', 'send_time: {at: "25:00", window_hours: 96}')
    line = line_of(project, "campaigns", '"25:00"')
    assert sorted(found) == sorted([
        f"config/campaigns.yaml:{line}:21: campaigns.1.send_time.at: '25:00' is not a time of day; "
        "write 24-hour HH:MM, e.g. '09:00' or '21:30'",
        f"config/campaigns.yaml:{line}:44: campaigns.1.send_time.window_hours: Input should be less than or equal to 72"])


def test_send_time_inside_quiet_hours_is_refused(project):
    found = problems_after(project, "campaigns", 'send_time: {at: "10:00"}', 'send_time: {at: "22:30"}')
    assert len(found) == 1
    assert "campaign 'welcome': send_time.at 22:30 falls in quiet_hours 21:00-08:00; pick a time outside them" in found[0]


def test_holdout_arms_and_offer_are_checked(project):
    found = problems_after(project, "campaigns", "    holdout: 0.2 ", "    holdout: 0.9 ")
    line = line_of(project, "campaigns", "holdout: 0.9")
    assert found == [f"config/campaigns.yaml:{line}:14: campaigns.8.holdout: Input should be less than or equal to 0.5"]
    problems_after(project, "campaigns", "    holdout: 0.9 ", "    holdout: 0.2 ")
    found = problems_after(project, "campaigns", "{name: last_hello, weight: 1,", "{name: stay_in_touch, weight: 1,")
    assert len(found) == 1 and "arm names must be unique: stay_in_touch, stay_in_touch" in found[0]
    problems_after(project, "campaigns", "{name: stay_in_touch, weight: 1, subject", "{name: last_hello, weight: 1, subject")
    found = problems_after(project, "campaigns", "offer: {prefix: BACK}", "offer: {prefix: back-}")
    assert len(found) == 1 and "campaigns.8.offer.prefix: String should match pattern" in found[0]


def test_shipped_planning_settings(project):
    campaigns = load_config(Paths.resolve(project)).campaigns
    assert [(c.max, c.hours) for c in campaigns.frequency_caps] == [(1, 16), (3, 168)]
    by_id = {c.id: c for c in campaigns.campaigns}
    assert by_id["post_purchase"].exempt_from_caps and by_id["post_purchase"].holdout == 0
    assert by_id["win_back"].holdout == 0.1  # the default
    assert [a.name for a in by_id["last_chance"].arms] == ["stay_in_touch", "last_hello"]
