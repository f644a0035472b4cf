"""`check_templates`: the shipped templates are clean; each kind of mistake is found with its place."""

from __future__ import annotations

from lojal.config import load_config
from lojal.render import check_templates


def _replace(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _line_of(path, needle):
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(needle))


def test_shipped_templates_pass_check(shipped_paths, shipped_config):
    assert [str(p) for p in check_templates(shipped_paths, shipped_config)] == []


def test_missing_unsubscribe_link_and_postal_address_are_errors(project):
    footer = project.templates_dir / "_shared" / "footer.mjml"
    _replace(footer, '<a href="{{ message.unsubscribe_url }}">{{ t.unsubscribe }}</a>', "")
    _replace(footer, "{{ brand.postal_address }}", "")
    errors = [p for p in check_templates(project, load_config(project)) if p.severity == "error"]
    messages = {p.message for p in errors}
    assert "campaign win_back (sv): no visible unsubscribe link to message.unsubscribe_url" in messages
    assert "campaign survey (da): the postal address (brand.postal_address) is missing" in messages
    assert len(errors) == 9 * 4 * 2  # 9 campaigns x 4 locales x 2 problems


def test_warnings_for_alt_text_http_links_long_subject_empty_preheader_and_size(project):
    header = project.templates_dir / "_shared" / "header.mjml"
    _replace(header, 'alt="{{ brand.name }}" ', "")
    _replace(header, "{{ brand.website_url | utm('header') }}", "http://nordlys.example/")
    strings = project.templates_dir / "birthday" / "strings.yaml"
    _replace(strings, '  en: "Happy birthday, {{ customer.first_name }}!"',
             '  en: "Happy birthday, {{ customer.first_name }}! We have something special for you in the shop today"')
    _replace(strings, '  sv: "En liten födelsedagshälsning från oss alla på {{ brand.name }}."', '  sv: ""')
    _replace(strings, '  da: "Forkæl dig selv"', '  da: "' + "Forkæl dig selv " * 7000 + '"')
    problems = check_templates(project, load_config(project))
    assert all(p.severity == "warning" for p in problems), [str(p) for p in problems if p.severity == "error"]
    shown = [str(p) for p in problems]
    assert "templates/_shared/header.mjml:4:5: warning: <mj-image> has no alt text (shown when images are blocked, " \
           "read by screen readers)" in shown
    assert "templates/_shared/header.mjml:4:5: warning: href uses http://, use https:// (http://nordlys.example/)" in shown
    subject_line = _line_of(strings, "subject:")
    assert any(s.startswith(f"templates/birthday/strings.yaml:{subject_line}:1: warning: campaign birthday (en): "
                            "subject has 79 characters, more than 78") for s in shown), shown
    assert (f"templates/birthday/strings.yaml:{_line_of(strings, 'preheader:')}:1: warning: campaign birthday (sv): "
            "the preheader is empty") in shown
    assert any("campaign birthday (da): HTML is" in s and "Gmail clips" in s for s in shown)
    assert not any("campaign birthday (nb): HTML is" in s for s in shown)


def test_check_reports_broken_yaml_without_raising(project):
    strings = project.templates_dir / "survey" / "strings.yaml"
    strings.write_text("subject:\n  en: [unclosed\n", encoding="utf-8")
    problems = check_templates(project, load_config(project))
    assert any(p.path == "templates/survey/strings.yaml" and p.line == 3 and "YAML syntax error" in p.message
               for p in problems), [str(p) for p in problems]
    # only the cause: no knock-on "unknown string" errors against email.mjml
    assert not any("survey" in p.path and p.path.endswith(".mjml") for p in problems), [str(p) for p in problems]


def test_ab_arms_must_name_an_existing_template_and_subject(project):
    _replace(project.config_dir / "campaigns.yaml", "subject: subject_urgent}", "subject: subject_urgnt, template: last_chanse}")
    messages = [p.message for p in check_templates(project, load_config(project)) if p.severity == "error"]
    assert messages == [
        "campaign last_chance, arm last_hello: template 'last_chanse' has no templates/last_chanse/email.mjml"]
    _replace(project.config_dir / "campaigns.yaml", ", template: last_chanse}", "}")
    messages = [p.message for p in check_templates(project, load_config(project)) if p.severity == "error"]
    assert messages == ["campaign last_chance, arm last_hello: subject 'subject_urgnt' is not a text in "
                        "templates/last_chance/strings.yaml; add it in en, nb, sv and da"]
