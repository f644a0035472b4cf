"""Bringing an existing template: `lojal check` has nothing to say about a template official MJML
accepts, and names other platforms' merge tags and MJML mistakes at their lines with the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lojal.config import load_config
from lojal.render import check_templates
from lojal.render.mjml_compile import node_mjml_available

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.mjml"))
NEWSLETTER = Path(__file__).parent / "corpus" / "newsletter.mjml"
needs_node = pytest.mark.skipif(not node_mjml_available(), reason="official MJML needs `node` and "
                                "`npm install --prefix bench/node` (Node is optional)")


def _bring(project, corpus_file: Path) -> Path:
    """The marketer's template as the birthday campaign's e-mail (its strings.yaml gives the subject)."""
    target = project.templates_dir / "birthday" / "email.mjml"
    shutil.copyfile(corpus_file, target)
    return target


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_check_has_nothing_to_say_about_a_template_official_mjml_accepts(project, path):
    _bring(project, path)
    assert [str(p) for p in check_templates(project, load_config(project))] == []


@needs_node
def test_compare_mjml_finds_no_error_or_difference_on_the_corpus_and_the_shipped_templates(project):
    _bring(project, NEWSLETTER)
    assert [str(p) for p in check_templates(project, load_config(project), compare_mjml=True)] == []


@needs_node
def test_compare_mjml_reports_official_validation_errors_at_their_line(project):
    email = _bring(project, NEWSLETTER)
    lines = email.read_text().splitlines()
    number = next(n for n, line in enumerate(lines, 1) if "<mj-button href=" in line)
    lines[number - 1] = lines[number - 1].replace("<mj-button ", '<mj-button padding="wide" ')
    email.write_text("\n".join(lines) + "\n")
    shown = [str(p) for p in check_templates(project, load_config(project), compare_mjml=True)]
    assert any(s.startswith(f"templates/birthday/email.mjml:{number}: official MJML: Attribute padding has invalid "
                            "value: wide") for s in shown), shown


def test_foreign_merge_tags_get_a_did_you_mean_at_their_line(project):
    email = _bring(project, NEWSLETTER)
    text = email.read_text()
    text = text.replace("Hello {{ customer.first_name }}, candle", "Hello *|FNAME|*, candle")
    text = text.replace('<mj-text css-class="story">The evenings', '<mj-text css-class="story">{{FirstName}}, the evenings')
    text = text.replace('<a href="{{ message.unsubscribe_url }}">', '<a href="{{ message.unsubscribe_url }}">'
                        "{{ person.first_name }}, ")
    email.write_text(text)
    lines = text.splitlines()
    line_of = {needle: next(n for n, line in enumerate(lines, 1) if needle in line)
               for needle in ("*|FNAME|*", "{{FirstName}}", "{{ person.first_name }}")}
    shown = [str(p) for p in check_templates(project, load_config(project))]
    col = lines[line_of["*|FNAME|*"] - 1].index("*|FNAME|*") + 1
    assert (f"templates/birthday/email.mjml:{line_of['*|FNAME|*']}:{col}: '*|FNAME|*' is a Mailchimp merge tag, "
            "which Lojal would send as written: did you mean {{ customer.first_name }}?") in shown
    col = lines[line_of["{{FirstName}}"] - 1].index("{{FirstName}}") + 1
    assert (f"templates/birthday/email.mjml:{line_of['{{FirstName}}']}:{col}: '{{{{FirstName}}}}' is another "
            "platform's merge tag; Lojal has no such variable: did you mean {{ customer.first_name }}?") in shown
    col = lines[line_of["{{ person.first_name }}"] - 1].index("{{ person.first_name }}") + 1
    assert (f"templates/birthday/email.mjml:{line_of['{{ person.first_name }}']}:{col}: '{{{{ person.first_name }}}}' "
            "is a Klaviyo merge tag; Lojal has no such variable: did you mean {{ customer.first_name }}?") in shown


def test_merge_tags_in_strings_yaml_are_found_too(project):
    strings = project.templates_dir / "birthday" / "strings.yaml"
    text = strings.read_text().replace('  en: "Happy birthday, {{ customer.first_name }}!"',
                                       '  en: "Happy birthday, *|FNAME|*!"')
    strings.write_text(text)
    number = next(n for n, line in enumerate(text.splitlines(), 1) if "*|FNAME|*" in line)
    shown = [str(p) for p in check_templates(project, load_config(project))]
    assert any(s.startswith(f"templates/birthday/strings.yaml:{number}:") and "did you mean {{ customer.first_name }}?" in s
               for s in shown), shown


def test_mjml_mistakes_are_named_at_their_line_with_the_fix(project):
    email = _bring(project, NEWSLETTER)
    lines = email.read_text().splitlines()
    first = next(n for n, line in enumerate(lines, 1) if "<mj-column>" in line)
    lines[first - 1] = lines[first - 1].replace("<mj-column>", "<mj-colum>")
    closing = next(n for n, line in enumerate(lines, 1) if n > first and "</mj-column>" in line)
    lines[closing - 1] = lines[closing - 1].replace("</mj-column>", "</mj-colum>")
    text_line = next(n for n, line in enumerate(lines, 1) if "<mj-text css-class=\"story\">" in line)
    lines.insert(text_line - 1, "      <p>Loose HTML</p>")
    email.write_text("\n".join(lines) + "\n")
    shown = [str(p) for p in check_templates(project, load_config(project))]
    assert (f"templates/birthday/email.mjml:{first}:{lines[first - 1].index('<mj-colum>') + 1}: unknown MJML element <mj-colum>; did you mean <mj-column>?"
            in shown), shown
    assert (f"templates/birthday/email.mjml:{text_line}:7: <p> must be inside mj-text, mj-raw or mj-button "
            "(HTML is not MJML)") in shown


@needs_node
def test_rendering_official_compiles_the_shops_templates_with_official_mjml(project):
    from lojal.render import load_templates
    from lojal.render.samples import SAMPLE_CUSTOMERS, sample_context

    (project.config_dir / "rendering.yaml").write_text("mjml: official\n", encoding="utf-8")
    config = load_config(project)
    templates = load_templates(project, config)
    assert "official" in templates.compiler.name
    campaign = config.campaign("birthday")
    email = templates.render("birthday", "sv", sample_context(campaign, SAMPLE_CUSTOMERS[3]))
    assert "Åsa" in email.html and "1\u00a0" in email.html  # SEK amounts, Swedish grouping


def test_rendering_official_without_node_says_what_to_install(project, monkeypatch):
    (project.config_dir / "rendering.yaml").write_text("mjml: official\n", encoding="utf-8")
    monkeypatch.setenv("PATH", "/nonexistent")  # no `node` on the PATH
    shown = [str(p) for p in check_templates(project, load_config(project))]
    assert any(s.startswith("config/rendering.yaml: mjml: official: official MJML needs `node` and `npm install "
                            "--prefix") and s.endswith("or set mjml: python") for s in shown), shown
