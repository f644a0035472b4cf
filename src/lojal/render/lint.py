"""`lojal check` for templates: everything that can be known before a single e-mail is sent.

Errors (the run would fail or send something unlawful): MJML structure and Jinja syntax errors,
unknown strings, undefined variables for any sample customer in any locale, a missing unsubscribe
link or postal address. Warnings: missing translations, images without alt text, non-https links,
subjects over 78 characters, an empty preheader, HTML over 102 KB (Gmail clips larger messages),
`<` or `&` inside a Jinja tag in MJML (compilers re-parse it).
"""

from __future__ import annotations

import re
from html import escape as html_escape
from html.parser import HTMLParser

from lojal.config import LOCALES, Campaign, ProjectConfig
from lojal.errors import HeaderInjectionError, Problem, RenderError
from lojal.paths import Paths
from lojal.render.catalog import SHARED_DIR, STRINGS_FILE, Catalog, missing_translations
from lojal.render.merge_tags import foreign_merge_tags
from lojal.render.jinja_env import reason_placeholder_problem
from lojal.render.samples import sample_contexts
from lojal.render.sources import ExpandedSource, SourceError, expand_includes
from lojal.render.templates import TEMPLATE_FILE, RenderedEmail, TemplateSet, compile_templates

MAX_SUBJECT_CHARS = 78
GMAIL_CLIP_BYTES = 102 * 1024
_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_HREF_OR_SRC = re.compile(r'(?:href|src)="(http://[^"]*)"')


def check_templates(paths: Paths, config: ProjectConfig, compare_mjml: bool = False) -> list[Problem]:
    """Every problem in the templates of enabled campaigns; never raises for bad files. With
    `compare_mjml`, each template is also compiled by official MJML (Node): its validation errors
    are reported at their lines, and a visible difference between the two compilers' output."""
    if not paths.templates_dir.is_dir():
        return [Problem(paths.relative(paths.templates_dir), None, None, "templates folder is missing")]
    try:
        result = compile_templates(paths, config)
    except Exception as exc:  # a checker reports, it does not crash on what it checks
        return [Problem(paths.relative(paths.templates_dir), None, None, f"could not compile templates: {exc}")]
    problems: list[Problem] = list(result.problems)
    for catalog in result.catalogs.values():
        problems += missing_translations(catalog)
        problems += reason_problems(catalog)
    for name in result.catalogs:
        problems += _source_problems(paths, name)
    for strings in [paths.templates_dir / SHARED_DIR / STRINGS_FILE,
                    *(paths.templates_dir / name / STRINGS_FILE for name in result.catalogs)]:
        problems += _merge_tag_problems_in_file(paths, strings)
    for campaign in config.campaigns.enabled:
        catalog = result.catalogs.get(campaign.template, Catalog())
        problems += _rendered_problems(paths, config, campaign, result.template_set, catalog)
        problems += _arm_problems(paths, campaign, result.catalogs)
    if compare_mjml:
        from lojal.render.compare import compare_compilers

        problems += compare_compilers(paths, result.template_set)
    return sorted(dict.fromkeys(problems), key=lambda p: (p.path, p.line or 0, p.col or 0, p.message))


def reason_problems(catalog: Catalog) -> list[Problem]:
    """Reason texts may only use plain {placeholders}: they are formatted for every recipient."""
    problems = []
    for entry in catalog.reasons.values():
        for locale, text in entry.translations.items():
            problem = reason_placeholder_problem(text)
            if problem:
                problems.append(Problem(entry.path, entry.line, 1, f"reason '{entry.key}' ({locale}): {problem}"))
    return problems


class _SourceScanner(HTMLParser):
    def __init__(self, source: ExpandedSource):
        super().__init__(convert_charrefs=True)
        self.source = source
        self.problems: list[Problem] = []
        self.in_defaults = False  # inside mj-attributes, elements are defaults, not content

    def _warn(self, message: str) -> None:
        line, col = self.getpos()
        path, src_line = self.source.origin(line)
        self.problems.append(Problem(path, src_line, col + 1, message, severity="warning"))

    def handle_starttag(self, tag: str, attrs) -> None:
        attributes = dict(attrs)
        if tag == "mj-attributes":
            self.in_defaults = True
        if self.in_defaults:
            return
        if tag in ("mj-image", "img") and not (attributes.get("alt") or "").strip():
            self._warn(f"<{tag}> has no alt text (shown when images are blocked, read by screen readers)")
        for name in ("href", "src"):
            if (attributes.get(name) or "").startswith("http://"):
                self._warn(f"{name} uses http://, use https:// ({attributes[name]})")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "mj-attributes":
            self.in_defaults = False


def _source_problems(paths: Paths, name: str) -> list[Problem]:
    try:
        source = expand_includes(paths.templates_dir / name / TEMPLATE_FILE, paths.relative, paths.templates_dir)
    except SourceError:
        return []  # already reported by compile_templates
    scanner = _SourceScanner(source)
    scanner.feed(source.text)
    scanner.close()
    problems = scanner.problems
    for tag in foreign_merge_tags(source.text):
        path, src_line = source.origin(tag.line)
        problems.append(Problem(path, src_line, tag.col, tag.message))
    for match in _JINJA_TAG.finditer(source.text):
        if "<" in match.group(0) or "&" in match.group(0):
            line = source.text.count("\n", 0, match.start()) + 1
            path, src_line = source.origin(line)
            problems.append(Problem(path, src_line, None, f"avoid < and & inside {match.group(0)[:40]}: MJML compilers "
                                    "re-parse them (use > with swapped operands, and |utm(key=value) for queries)",
                                    severity="warning"))
    return problems


def _merge_tag_problems_in_file(paths: Paths, path) -> list[Problem]:
    if not path.is_file():
        return []
    return [Problem(paths.relative(path), tag.line, tag.col, tag.message)
            for tag in foreign_merge_tags(path.read_text(encoding="utf-8"))]


def _rendered_problems(paths: Paths, config: ProjectConfig, campaign: Campaign, templates: TemplateSet,
                       catalog: Catalog) -> list[Problem]:
    where = paths.relative(paths.templates_dir / campaign.template / TEMPLATE_FILE)
    problems: list[Problem] = []
    for locale in LOCALES:
        if (campaign.template, locale) not in templates.compiled:
            continue  # its compile problems are already reported
        for label, context in sample_contexts(config, campaign):
            try:
                email = templates.render(campaign.template, locale, context)
            except (RenderError, HeaderInjectionError) as exc:
                message = str(exc).replace(f"template '{campaign.template}' ", "")
                place = templates.locate_failure(campaign.template, locale, context)
                if place is None or place[1] is None:
                    path, line, col = _string_place(catalog, place[0], where) if place else (where, None, None)
                else:
                    path, line, col = place[0], place[1], None
                problems.append(Problem(path, line, col, f"campaign {campaign.id}, sample {label}: {message}"))
                break  # the other samples of this locale would repeat the same problem
            problems += _email_problems(where, campaign, locale, email, context, config, catalog)
    return problems


def _arm_problems(paths: Paths, campaign: Campaign, catalogs: dict[str, Catalog]) -> list[Problem]:
    """A/B arms name a template folder and/or a subject key in its strings.yaml: both must exist."""
    where = paths.relative(paths.config_dir / "campaigns.yaml")
    problems = []
    for arm in campaign.arms:
        template = arm.template or campaign.template
        if arm.template and not (paths.templates_dir / arm.template / TEMPLATE_FILE).is_file():
            problems.append(Problem(where, None, None, f"campaign {campaign.id}, arm {arm.name}: template '{arm.template}' "
                                    f"has no {paths.relative(paths.templates_dir / arm.template / TEMPLATE_FILE)}"))
        catalog = catalogs.get(template)
        if arm.subject and catalog is not None and arm.subject not in catalog.entries:
            problems.append(Problem(where, None, None, f"campaign {campaign.id}, arm {arm.name}: subject '{arm.subject}' "
                                    f"is not a text in templates/{template}/strings.yaml; add it in en, nb, sv and da"))
    return problems


def _string_place(catalog: Catalog, key: str, fallback: str) -> tuple[str, int | None, int | None]:
    """Where a string is defined (strings.yaml, line), for problems about its rendered text."""
    entry = catalog.entries.get(key)
    return (entry.path, entry.line, 1) if entry else (fallback, None, None)


def _email_problems(where: str, campaign: Campaign, locale: str, email: RenderedEmail, context: dict,
                    config: ProjectConfig, catalog: Catalog) -> list[Problem]:
    prefix = f"campaign {campaign.id} ({locale})"
    problems: list[Problem] = []
    unsubscribe = html_escape(context["message"]["unsubscribe_url"], quote=True)
    if f'href="{unsubscribe}"' not in email.html:
        problems.append(Problem(where, None, None, f"{prefix}: no visible unsubscribe link to message.unsubscribe_url"))
    address = config.brand.postal_address
    if html_escape(address, quote=False) not in email.html or address not in email.text:
        problems.append(Problem(where, None, None, f"{prefix}: the postal address (brand.postal_address) is missing"))
    if len(email.subject) > MAX_SUBJECT_CHARS:
        problems.append(Problem(*_string_place(catalog, "subject", where), f"{prefix}: subject has {len(email.subject)} characters, more than "
                                f"{MAX_SUBJECT_CHARS} get cut off: {email.subject!r}", severity="warning"))
    if not email.preheader:
        problems.append(Problem(*_string_place(catalog, "preheader", where), f"{prefix}: the preheader is empty",
                                severity="warning"))
    size = len(email.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        problems.append(Problem(where, None, None, f"{prefix}: HTML is {size // 1024} KB; Gmail clips messages over "
                                "102 KB (hiding the unsubscribe link)", severity="warning"))
    for url in _HREF_OR_SRC.findall(email.html):
        problems.append(Problem(where, None, None, f"{prefix}: link or image uses http://, use https:// ({url})",
                                severity="warning"))
    return problems

