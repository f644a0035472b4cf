"""A broken template fails load_templates before anything is sent, with file:line positions,
and `lojal check` reports the same problems (plus warnings) without raising."""

from __future__ import annotations

import pytest

from lojal.config import load_config
from lojal.errors import ProjectError
from lojal.render import check_templates, load_templates
from lojal.render.samples import SAMPLE_CUSTOMERS, sample_context


def _replace(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path, needle):
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def _load_error(project, one_campaign, campaign_id) -> ProjectError:
    config = one_campaign(load_config(project), campaign_id)
    with pytest.raises(ProjectError) as error:
        load_templates(project, config)
    return error.value


def test_mismatched_mjml_tag_fails_with_file_and_line(project, one_campaign):
    email = project.templates_dir / "birthday" / "email.mjml"
    _replace(email, "<mj-text>{{ t.intro }}</mj-text>", "<mj-text>{{ t.intro }}</mj-column>")
    error = _load_error(project, one_campaign, "birthday")
    line = _line_of(email, "{{ t.intro }}</mj-column>")
    assert any(p.path == "templates/birthday/email.mjml" and p.line == line and "does not match <mj-text>" in p.message
               for p in error.problems), error.problems


def test_element_in_the_wrong_place_is_reported_in_the_partial(project, one_campaign):
    footer = project.templates_dir / "_shared" / "footer.mjml"
    _replace(footer, "<mj-column>", "<mj-column><mj-section></mj-section>")
    error = _load_error(project, one_campaign, "win_back")
    line = _line_of(footer, "<mj-column><mj-section>")
    assert any(p.path == "templates/_shared/footer.mjml" and p.line == line and "<mj-section> cannot be inside <mj-column>"
               in p.message for p in error.problems), error.problems


def test_unknown_element_and_missing_include(project, one_campaign):
    email = project.templates_dir / "survey" / "email.mjml"
    _replace(email, "<mj-include path=\"../_shared/footer.mjml\" />", "<mj-include path=\"../_shared/fotter.mjml\" />")
    error = _load_error(project, one_campaign, "survey")
    assert [str(p) for p in error.problems] == [
        f"templates/survey/email.mjml:{_line_of(email, 'fotter')}:5: mj-include: file not found: ../_shared/fotter.mjml"]
    _replace(email, "fotter", "footer")
    _replace(email, "<mj-text mj-class=\"muted\"", "<mj-txt mj-class=\"muted\"")
    _replace(email, "{{ t.scale }}</mj-text>", "{{ t.scale }}</mj-txt>")
    error = _load_error(project, one_campaign, "survey")
    assert any("unknown MJML element <mj-txt>" in p.message and p.line == _line_of(email, "<mj-txt") for p in error.problems)


def test_jinja_syntax_error_points_at_the_line(project, one_campaign):
    email = project.templates_dir / "tier_upgrade" / "email.mjml"
    _replace(email, "<mj-text>{{ t.benefits }}</mj-text>", "<mj-text>{{ t.benefits }} {% if customer.tier %}</mj-text>")
    error = _load_error(project, one_campaign, "tier_upgrade")
    line = _line_of(email, "{% if customer.tier %}")
    assert [(p.path, p.line) for p in error.problems] == [("templates/tier_upgrade/email.mjml", line)]
    assert "Jinja syntax error" in error.problems[0].message
    _replace(email, "{% if customer.tier %}", "{{ customer.tier | }}")
    error = _load_error(project, one_campaign, "tier_upgrade")
    assert [(p.path, p.line) for p in error.problems] == [("templates/tier_upgrade/email.mjml", line)]


def test_unknown_string_key_is_reported(project, one_campaign):
    email = project.templates_dir / "vip_care" / "email.mjml"
    _replace(email, "{{ t.sign_off }}", "{{ t.sign_of }}")
    error = _load_error(project, one_campaign, "vip_care")
    assert any("unknown string 't.sign_of'" in p.message and p.line == _line_of(email, "t.sign_of")
               for p in error.problems)


def test_template_used_by_a_campaign_must_exist(project, one_campaign):
    (project.templates_dir / "win_back" / "email.mjml").unlink()
    error = _load_error(project, one_campaign, "win_back")
    assert "does not exist" in str(error)


def test_undefined_variable_in_template_is_caught_by_check(project):
    email = project.templates_dir / "birthday" / "email.mjml"
    _replace(email, "{{ t.intro }}", "{{ t.intro }} {{ customer.nickname }}")
    problems = check_templates(project, load_config(project))
    errors = [p for p in problems if p.severity == "error"]
    assert errors and all("nickname" in p.message for p in errors)
    assert {p.path for p in errors} == {"templates/birthday/email.mjml"}
    assert {m for p in errors for m in ("(en)", "(nb)", "(sv)", "(da)") if m in p.message} == {"(en)", "(nb)", "(sv)", "(da)"}


def test_missing_translation_falls_back_to_english_and_is_reported(project, one_campaign):
    strings = project.templates_dir / "birthday" / "strings.yaml"
    _replace(strings, '  nb: "Gratulerer med dagen!"\n', "")
    config = load_config(project)
    templates = load_templates(project, one_campaign(config, "birthday"))
    sample = next(s for s in SAMPLE_CUSTOMERS if s.customer["locale"] == "nb")
    email = templates.render("birthday", "nb", sample_context(config.campaign("birthday"), sample))
    assert "Happy birthday!" in email.text and "Gratulerer med dagen, " in email.subject
    warnings = [p for p in check_templates(project, config) if p.severity == "warning"]
    assert [str(p) for p in warnings] == [
        f"templates/birthday/strings.yaml:{_line_of(strings, 'heading:')}:1: warning: 'heading' has no nb translation; "
        "English is used"]


def test_jinja_error_in_a_string_points_at_the_string(project, one_campaign):
    strings = project.templates_dir / "win_back" / "strings.yaml"
    _replace(strings, '  sv: "Nyheter och gamla favoriter, utvalda för dig."', '  sv: "Nyheter {{ customer.first_name "')
    error = _load_error(project, one_campaign, "win_back")
    assert [(p.path, p.line) for p in error.problems] == [("templates/win_back/strings.yaml", _line_of(strings, "preheader:"))]
    assert "Jinja syntax error in 'preheader' (sv)" in error.problems[0].message
