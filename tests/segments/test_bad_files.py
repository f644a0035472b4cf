"""Every mistake in a segment file is reported as path:line:col: message, all of them at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lojal.errors import ProjectError
from lojal.paths import Paths
from lojal.segments import check_segments, load_segments

BAD = Path(__file__).parent / "bad"
CONSENT = ("consent cannot be used or switched off in a segment file: the engine mails only customers with e-mail "
           "consent who are not suppressed (lojal.audience); remove '{}'")

CASES = {
    ("typo_feature",): ["segments/typo_feature.yaml:7:11: unknown feature 'recensy_score' (did you mean 'recency_score'?)"],
    ("wrong_type",): ["segments/wrong_type.yaml:4:22: 'order_count' is a number; got 'many': write a number such as 3 or "
                        "2.5, without quotes"],
    ("unknown_operator",): ["segments/unknown_operator.yaml:4:27: unknown operator 'gtee' (did you mean 'gte'?)"],
    ("wrong_operator",): ["segments/wrong_operator.yaml:4:17: operator 'contains' does not apply to number feature "
                          "'order_count'; use one of eq, ne, in, not_in, lt, lte, gt, gte, between, is_null"],
    ("bad_relative_date",): ["segments/bad_relative_date.yaml:4:24: bad date 'thirty days ago' for 'last_order_at': "
                             "write a date like 2024-05-31 or a relative date like '30 days ago', 'in 3 days', 'today'"],
    ("impossible_date",): ["segments/impossible_date.yaml:4:25: cannot read '2024-02-30': day is out of range for month; "
                           "fix the value or quote it"],
    ("cycle_a", "cycle_b"): ["segments/cycle_b.yaml:6:7: segments refer to each other in a cycle: cycle_a -> cycle_b -> "
                             "cycle_a; a segment cannot depend on itself, remove one of these references"],
    ("self_cycle",): ["segments/self_cycle.yaml:6:7: segments refer to each other in a cycle: self_cycle -> self_cycle; "
                      "a segment cannot depend on itself, remove one of these references"],
    ("syntax_error",): ["segments/syntax_error.yaml:5:1: YAML syntax error: while parsing a flow mapping, expected ',' or "
                        "'}', but got '<stream end>'; check indentation, colons and quotes"],
    ("empty_file",): ["segments/empty_file.yaml:1:1: file is empty: a segment needs name, description and where "
                    "(see docs/segments.md), or delete the file"],
    ("tabs",): ["segments/tabs.yaml:4:1: tab character in indentation: YAML indents with spaces only; replace the tab "
                "with spaces"],
    ("unknown_key",): ["segments/unknown_key.yaml:2:1: unknown key 'descripton' (did you mean 'description'?)"],
    ("missing_where",): ["segments/missing_where.yaml:1:1: missing required key 'where': add 'where:' with the condition, "
                      "e.g. 'where: {days_since_last_order: {gte: 90}}'"],
    ("consent_off",): ["segments/consent_off.yaml:3:1: " + CONSENT.format("consent")],
    ("consent_feature",): ["segments/consent_feature.yaml:4:3: " + CONSENT.format("consent_email")],
    ("norway",): ["segments/norway.yaml:4:12: 'country' is text but YAML read false: YAML treats yes/no/on/off/NO as "
                  "true/false, so quote the value, e.g. 'NO'"],
    ("unknown_segment", "champions"): ["segments/unknown_segment.yaml:4:3: unknown segment 'champion' (did you mean "
                                       "'champions'?)"],
    ("two_keys",): ["segments/two_keys.yaml:5:3: a condition has exactly one key but this one has 'order_count', 'tier': "
                    "put them in a list under 'all:' (every one must hold) or 'any:' (at least one)"],
    ("reversed_between",): ["segments/reversed_between.yaml:4:36: 'between' low value 180 is after high value 90: swap them"],
    ("name_mismatch",): ["segments/name_mismatch.yaml:1:7: name 'other_name' does not match the file name "
                         "'name_mismatch.yaml': rename the file or change the name"],
    ("bought_typo",): ["segments/bought_typo.yaml:4:30: unknown key 'within_day' (did you mean 'within_days'?)"],
    ("empty_any",): ["segments/empty_any.yaml:4:8: 'any' needs a list of conditions (lines starting with '- '), got an "
                     "empty list"],
    ("ordered_text",): ["segments/ordered_text.yaml:4:21: ordered_days_ago needs a whole number of days (0 or more), got "
                        "'yesterday'"],
    ("between_one",): ["segments/between_one.yaml:4:26: 'between' needs two values [low, high], got a list of 1"],
    ("bought_both",): ["segments/bought_both.yaml:4:11: bought needs exactly one of 'sku' or 'category' (a name or a "
                       "list of names)"],
    ("no_name",): ["segments/no_name.yaml:1:1: missing required key 'name': add 'name: no_name' (the file name without "
                   ".yaml)"],
    ("where_text",): ["segments/where_text.yaml:3:8: a condition must be a mapping like 'days_since_last_order: "
                      "{gte: 90}', got 'everyone who ordered'"],
}


def project_with(tmp_path: Path, names: tuple[str, ...]) -> Paths:
    (tmp_path / "segments").mkdir()
    for name in names:
        shutil.copy(BAD / f"{name}.yaml", tmp_path / "segments" / f"{name}.yaml")
    return Paths.resolve(tmp_path)


@pytest.mark.parametrize("names", list(CASES), ids=lambda names: names[0])
def test_bad_file_reports_exact_message(tmp_path, names):
    problems = check_segments(project_with(tmp_path, names))
    assert [str(p) for p in problems] == CASES[names]


def test_every_problem_in_every_file_is_reported_together(tmp_path):
    every_file = tuple(sorted({name for names in CASES for name in names}))
    paths = project_with(tmp_path, every_file)
    expected = sorted(message for messages in CASES.values() for message in messages)
    assert sorted(str(p) for p in check_segments(paths)) == expected
    with pytest.raises(ProjectError) as raised:
        load_segments(paths)
    assert sorted(str(p) for p in raised.value.problems) == expected


def test_several_mistakes_in_one_file_are_all_reported(tmp_path):
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "many.yaml").write_text(
        "name: many\n"
        "description: Three mistakes.\n"
        "where:\n"
        "  all:\n"
        "    - ordr_count: {gte: 2}\n"
        "    - tier_upgraded: {eq: maybe}\n"
        "    - last_order_at: {lt: someday}\n")
    assert [str(p) for p in check_segments(Paths.resolve(tmp_path))] == [
        "segments/many.yaml:5:7: unknown feature 'ordr_count' (did you mean 'order_count'?)",
        "segments/many.yaml:6:27: 'tier_upgraded' is true or false; got 'maybe': write true or false",
        "segments/many.yaml:7:27: bad date 'someday' for 'last_order_at': write a date like 2024-05-31 or a relative "
        "date like '30 days ago', 'in 3 days', 'today'",
    ]


def test_a_list_is_not_a_flag_value(tmp_path):
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "flags.yaml").write_text(
        "name: flags\ndescription: A list for a flag.\nwhere:\n  tier_upgraded: [true]\n")
    assert [str(p) for p in check_segments(Paths.resolve(tmp_path))] == [
        "segments/flags.yaml:4:18: 'tier_upgraded' is true or false: write 'tier_upgraded: true' or "
        "'tier_upgraded: false', not a list"]
