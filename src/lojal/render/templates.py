"""Loading templates once per run and rendering them per recipient.

For each (template, locale):  templates/<name>/email.mjml
    -> resolve mj-include (sources)  -> put in the locale's strings (catalog)
    -> route every link through |utm (link tracking)  -> check MJML structure and Jinja syntax
    -> compile MJML to HTML once, Jinja left intact  -> Jinja templates for HTML, text, subject, preheader
Per recipient only Jinja runs (`TemplateSet.render`).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from jinja2 import Template, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from lojal.config import LOCALES, Brand, ProjectConfig, Tracking
from lojal.delivery.message import MAX_SUBJECT, header_text
from lojal.errors import HeaderInjectionError, Problem, ProjectError, RenderError
from lojal.paths import Paths
from lojal.render.catalog import (SHARED_DIR, STRING_PLACEHOLDER, STRINGS_FILE, Catalog, read_catalog,
                                  substitute_strings)
from lojal.render.jinja_env import TemplateLimitError, make_environment, render_bounded, render_budget
from lojal.render.mjml_compile import MjmlCompileError, MjmlCompiler, PythonMjml, compiler_for
from lojal.render.sources import (ExpandedSource, SourceError, check_structure, expand_includes, inside,
                                  stray_include)
from lojal.render.text import text_template_from_html, tidy_text

TEMPLATE_FILE = "email.mjml"
SUBJECT_KEY = "subject"
PREHEADER_KEY = "preheader"
_HREF = re.compile(r'href="([^"]*)"')
_SINGLE_EXPRESSION = re.compile(r"^\{\{\s*(.+?)\s*\}\}$", re.DOTALL)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str
    text: str


@dataclass
class CompiledTemplate:
    name: str
    locale: str
    mjml_source: str  # includes resolved, strings and link tracking applied: the input of the compiler
    html: Template
    text: Template
    subject: Template
    preheader: Template
    origins: list[tuple[str, int]] = field(default_factory=list)  # (file, line) of each line of mjml_source
    subjects: dict[str, Template] = field(default_factory=dict)  # other subject strings (A/B arms' `subject`)
    _per_recipient_source: Template | None = None


@dataclass
class Environments:
    """A sandboxed HTML (autoescaped) and text environment per locale."""

    html: dict[str, SandboxedEnvironment]
    text: dict[str, SandboxedEnvironment]

    @classmethod
    def build(cls, tracking: Tracking, catalog: Catalog, money_formats: dict[str, str]) -> "Environments":
        html, text = {}, {}
        for locale in LOCALES:
            reason_text = lambda code, _locale=locale: catalog.reason(code, _locale)  # noqa: E731
            pattern = money_formats.get(locale)
            html[locale] = make_environment(locale, tracking, reason_text, html=True, money_format=pattern)
            text[locale] = make_environment(locale, tracking, reason_text, html=False, money_format=pattern)
        return cls(html, text)


def brand_context(brand: Brand) -> dict[str, Any]:
    """config.brand as the `brand` variable; URLs as strings, website_url without trailing slash."""
    data = brand.model_dump(mode="json")
    data["website_url"] = str(data["website_url"]).rstrip("/")
    return data


def track_links(mjml: str) -> str:
    """Route every web link through the |utm filter so UTM parameters are added automatically.

    Static `https://...` hrefs and hrefs that are one `{{ expression }}` get `| utm('link')`; hrefs
    already using |utm, the unsubscribe link, mailto: and anything else are left alone.
    """

    def rewrite(match: re.Match) -> str:
        href = match.group(1)
        if "utm" in href or "unsubscribe_url" in href:
            return match.group(0)
        if href.startswith(("https://", "http://")) and "{" not in href and "'" not in href:
            return f"href=\"{{{{ '{href}' | utm('link') }}}}\""
        expression = _SINGLE_EXPRESSION.match(href)
        if expression and "{{" not in expression.group(1):
            return f'href="{{{{ ({expression.group(1)}) | utm(\'link\') }}}}"'
        return match.group(0)

    return _HREF.sub(rewrite, mjml)


_CONSTANT = re.compile(r"\{\{\s*(?:brand\.([A-Za-z_]+)|(locale))\s*\}\}")


def fold_constants(source: str, brand: Mapping[str, Any], locale: str, *, html: bool) -> str:
    """Replace plain `{{ brand.x }}` and `{{ locale }}` by their values (escaped for HTML).

    Both are the same for every recipient of a run (brand always comes from config), so they are
    written in once at compile time instead of being looked up and escaped per e-mail. Expressions
    with filters, and values that are not plain text, stay Jinja.
    """

    def replace(match: re.Match) -> str:
        value = locale if match.group(2) else brand.get(match.group(1))
        if not isinstance(value, str) or "{" in value or "%" in value:
            return match.group(0)
        return str(escape(value)) if html else value

    return _CONSTANT.sub(replace, source)


def template_names(config: ProjectConfig) -> list[str]:
    return sorted({campaign.template for campaign in config.campaigns.enabled})


def sending_template_names(config: ProjectConfig) -> list[str]:
    """The templates a run renders: of enabled campaigns and of their A/B arms (`lojal check`
    reports an arm's missing template itself)."""
    return sorted(set(template_names(config))
                  | {arm.template for campaign in config.campaigns.enabled for arm in campaign.arms if arm.template})


@dataclass
class TemplateSet:
    compiled: dict[tuple[str, str], CompiledTemplate]
    brand: dict[str, Any]
    environments: Environments
    compiler: MjmlCompiler

    @property
    def templates(self) -> list[str]:
        return sorted({name for name, _ in self.compiled})

    def _get(self, template: str, locale: str) -> CompiledTemplate:
        try:
            return self.compiled[(template, locale)]
        except KeyError:
            raise RenderError(f"no compiled template '{template}' for locale '{locale}' "
                              f"(templates: {self.templates}, locales: {list(LOCALES)})") from None

    def _context(self, locale: str, context: Mapping[str, Any]) -> dict[str, Any]:
        # `brand` always comes from config (normalized once in brand_context), even when the
        # caller passes its own copy: a website_url with a trailing slash would double slashes.
        return {**context, "brand": self.brand, "locale": locale}

    def render(self, template: str, locale: str, context: Mapping[str, Any],
               subject_key: str | None = None) -> RenderedEmail:
        """Personalize one e-mail: Jinja only, the MJML was compiled at load time. `subject_key`: another
        subject string of the template's strings.yaml (an A/B arm's `subject`)."""
        compiled = self._get(template, locale)
        data = self._context(locale, context)
        subject_template = compiled.subject
        if subject_key and subject_key != SUBJECT_KEY:
            if subject_key not in compiled.subjects:
                raise RenderError(f"template '{template}' ({locale}) has no string '{subject_key}' to use as the "
                                  f"subject; add it to its strings.yaml")
            subject_template = compiled.subjects[subject_key]
        with _render_errors(template, locale), render_budget():
            subject = render_bounded(subject_template, data).strip()
            preheader = render_bounded(compiled.preheader, data).strip()
            html = render_bounded(compiled.html, data)
            text = tidy_text(render_bounded(compiled.text, data))
        try:
            subject = header_text("Subject", subject, MAX_SUBJECT)
        except HeaderInjectionError:
            raise HeaderInjectionError(f"subject of '{template}' ({locale}) contains a line break or control "
                                       f"character: {subject[:80]!r}") from None
        return RenderedEmail(subject=subject, preheader=preheader, html=html, text=text)

    def locate_failure(self, template: str, locale: str, context: Mapping[str, Any]) -> tuple[str, int | None] | None:
        """Where rendering this context fails: ("subject"/"preheader", None) for a string, or the
        (file, line) in the MJML source (by rendering the source itself, Jinja only); None if it
        does not fail there."""
        compiled = self._get(template, locale)
        data = self._context(locale, context)
        for key, part in (("subject", compiled.subject), ("preheader", compiled.preheader)):
            try:
                with render_budget():
                    render_bounded(part, data)
            except Exception:  # noqa: BLE001 - we only want to know where
                return (key, None)
        if compiled._per_recipient_source is None:
            compiled._per_recipient_source = self.environments.html[locale].from_string(compiled.mjml_source)
        try:
            with render_budget():
                render_bounded(compiled._per_recipient_source, data)
        except Exception as exc:  # noqa: BLE001
            line = _template_line(exc)
            if line and compiled.origins:
                return compiled.origins[min(line, len(compiled.origins)) - 1]
        return None

    def render_html_compiling_per_recipient(self, template: str, locale: str, context: Mapping[str, Any],
                                            compiler: MjmlCompiler | None = None) -> str:
        """The slow reference path: Jinja on the MJML source, then compile MJML for this recipient.

        Used by the equality test and the benchmark only. Wrong when data holds quotes or markup,
        because the compiler re-parses the escaped output.
        """
        compiled = self._get(template, locale)
        if compiled._per_recipient_source is None:
            compiled._per_recipient_source = self.environments.html[locale].from_string(compiled.mjml_source)
        with _render_errors(template, locale), render_budget():
            mjml = render_bounded(compiled._per_recipient_source, self._context(locale, context))
        return (compiler or self.compiler).compile(mjml)


def _template_line(exc: BaseException) -> int | None:
    """The template line an exception was raised at (Jinja rewrites tracebacks to template lines)."""
    line = getattr(exc, "template_lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>" and getattr(exc, "template_lineno", None) is None:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


@contextmanager
def _render_errors(template: str, locale: str) -> Iterator[None]:
    """Turn Jinja failures during one render into RenderError naming template, locale and variable."""
    where = f"template '{template}' ({locale})"
    try:
        yield
    except UndefinedError as exc:
        raise RenderError(f"{where}: undefined variable: {exc.message}") from exc
    except TemplateLimitError as exc:
        raise RenderError(f"{where}: over a limit: {exc}") from exc
    except SecurityError as exc:
        raise RenderError(f"{where}: not allowed in templates: {exc}") from exc
    except (TemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except RecursionError as exc:
        raise RenderError(f"{where}: over a limit: recursion too deep (a macro calling itself?)") from exc
    except (HeaderInjectionError, RenderError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever one e-mail's data does, it fails that e-mail only
        raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from exc


@dataclass
class CompileResult:
    template_set: TemplateSet
    problems: list[Problem]
    catalogs: dict[str, Catalog]


def compile_templates(paths: Paths, config: ProjectConfig, names: Iterable[str] | None = None,
                      compiler: MjmlCompiler | None = None) -> CompileResult:
    """Compile every (template, locale); collect problems instead of raising. Without `compiler`,
    the one config/rendering.yaml sets (the Python port by default)."""
    created = compiler is None
    if compiler is None:
        try:
            compiler = compiler_for(config.rendering.mjml)
        except MjmlCompileError as exc:
            return CompileResult(TemplateSet({}, brand_context(config.brand), Environments.build(
                config.tracking, Catalog(), config.brand.money_formats), PythonMjml()),
                [Problem("config/rendering.yaml", None, None, f"mjml: official: {exc}; or set mjml: python")], {})
    problems: list[Problem] = []
    shown = paths.relative
    shared = read_catalog(paths.templates_dir / SHARED_DIR / STRINGS_FILE,
                          shown(paths.templates_dir / SHARED_DIR / STRINGS_FILE), problems)
    shared_broken = bool(problems)  # every template would report knock-on errors: report the cause only
    environments = Environments.build(config.tracking, shared, config.brand.money_formats)
    brand = brand_context(config.brand)
    compiled: dict[tuple[str, str], CompiledTemplate] = {}
    catalogs: dict[str, Catalog] = {}
    for name in (template_names(config) if names is None else names):
        template_dir = paths.templates_dir / name
        source_path = template_dir / TEMPLATE_FILE
        if not inside(paths.templates_dir, template_dir):
            problems.append(Problem(f"{shown(paths.templates_dir)}/{name}", None, None, f"template '{name}' resolves outside templates/ "
                                    "(a symlink?): templates must be inside the templates folder"))
            continue
        if not source_path.is_file():
            problems.append(Problem(shown(source_path), None, None,
                                    f"template '{name}' is used by a campaign but {shown(source_path)} does not exist"))
            continue
        strings_path = template_dir / STRINGS_FILE
        before = len(problems)
        catalog = shared.merged_with(read_catalog(strings_path, shown(strings_path), problems))
        if shared_broken or len(problems) > before:
            continue  # a broken strings file: its own problems say what to fix, not knock-on errors
        catalogs[name] = catalog
        try:
            expanded = expand_includes(source_path, shown, paths.templates_dir)
        except SourceError as exc:
            problems.append(exc.problem)
            continue
        for locale in LOCALES:
            result = _compile_one(name, locale, expanded, catalog, environments, compiler, shown(strings_path), brand)
            if isinstance(result, CompiledTemplate):
                compiled[(name, locale)] = result
            else:
                problems.extend(p for p in result if p not in problems)
    if created and hasattr(compiler, "close"):
        compiler.close()  # the Node worker: every template is compiled by now
    template_set = TemplateSet(compiled, brand, environments, compiler)
    return CompileResult(template_set, problems, catalogs)


def _compile_one(name: str, locale: str, expanded: ExpandedSource, catalog: Catalog, environments: Environments,
                 compiler: MjmlCompiler, strings_shown: str, brand: Mapping[str, Any]) -> CompiledTemplate | list[Problem]:
    source, unknown = substitute_strings(expanded.text, catalog, locale)
    stray = stray_include(source)
    if stray is not None:  # a string brought one in: the compiler would read the file it names
        return [_at(expanded.origin(source.count("\n", 0, stray) + 1),
                    f"mj-include inside a string of {strings_shown} is not allowed: strings are text")]
    problems = [_at(expanded.origin(_line_of(expanded.text, f"t.{key}")),
                    f"unknown string 't.{key}': add it to {strings_shown}") for key in dict.fromkeys(unknown)]
    for key in (SUBJECT_KEY, PREHEADER_KEY):
        if catalog.text(key, locale) is None:
            problems.append(Problem(strings_shown, None, None, f"missing '{key}' (every template needs a {key})"))
    used = {m.group(1) for m in STRING_PLACEHOLDER.finditer(expanded.text)} | {SUBJECT_KEY, PREHEADER_KEY}
    problems += _string_syntax_problems(catalog, used, locale, environments.text[locale])
    if problems:
        return problems  # a broken string would also break the whole document: report it once, at its line
    source = track_links(source)
    located = ExpandedSource(source, expanded.origins)
    problems += check_structure(located)
    html_env, text_env = environments.html[locale], environments.text[locale]
    try:
        html_env.parse(source)
    except TemplateSyntaxError as exc:
        line = _unclosed_block_line(source) if "end of template" in (exc.message or "") else exc.lineno
        problems.append(_at(located.origin(line or exc.lineno), f"Jinja syntax error: {exc.message}"))
    if problems:
        return problems
    where = expanded.origins[0][0]
    try:
        # Constants go in after compiling: the compiler would re-parse escaped quotes in attributes.
        compiled_html = fold_constants(compiler.compile(source), brand, locale, html=True)
    except MjmlCompileError as exc:
        return [Problem(where, 1, None, f"MJML compiler ({compiler.name}) failed: {exc}; check the attributes of "
                        "the elements you changed last against the MJML documentation, or run `lojal check "
                        "--compare-mjml` to see official MJML's message with its line")]
    try:
        return CompiledTemplate(
            name=name, locale=locale, mjml_source=source, origins=list(expanded.origins),
            html=_template(html_env, compiled_html),
            text=_template(text_env, text_template_from_html(compiled_html)),
            subject=_template(text_env, fold_constants(catalog.text(SUBJECT_KEY, locale)[0], brand, locale,  # type: ignore[index]
                                                      html=False)),
            preheader=_template(text_env, fold_constants(catalog.text(PREHEADER_KEY, locale)[0], brand,  # type: ignore[index]
                                                        locale, html=False)),
            subjects=_arm_subjects(catalog, locale, text_env, brand),
        )
    except TemplateSyntaxError as exc:
        return [Problem(where, None, None, f"Jinja syntax error after compiling ({locale}): {exc.message}")]


def _arm_subjects(catalog: Catalog, locale: str, environment: SandboxedEnvironment,
                  brand: Mapping[str, Any]) -> dict[str, Template]:
    """Every `subject_*` string in the locale, compiled (an A/B arm may name one as its subject)."""
    subjects = {}
    for key in catalog.entries:
        found = catalog.text(key, locale) if key.startswith(SUBJECT_KEY + "_") else None
        if found is not None:
            subjects[key] = _template(environment, fold_constants(found[0], brand, locale, html=False))
    return subjects


def _string_syntax_problems(catalog: Catalog, keys: Iterable[str], locale: str,
                            environment: SandboxedEnvironment) -> list[Problem]:
    problems = []
    for key in sorted(keys):
        entry, found = catalog.entries.get(key), catalog.text(key, locale)
        if entry is None or found is None:
            continue
        try:
            environment.parse(found[0])
        except TemplateSyntaxError as exc:
            problems.append(Problem(entry.path, entry.line, None, f"Jinja syntax error in '{key}' ({locale}): {exc.message}"))
    return problems


def _template(environment: SandboxedEnvironment, source: str) -> Template:
    template = environment.from_string(source)
    # Jinja keeps globals as a ChainMap that every render copies key by key; a plain dict
    # snapshot renders the same and is cheaper 4 times per e-mail.
    template.globals = dict(template.globals)
    return template


def _at(origin: tuple[str, int], message: str) -> Problem:
    return Problem(origin[0], origin[1], None, message)


_BLOCK_TAG = re.compile(r"\{%-?\s*(\w+)")
_BLOCK_OPENERS = {"if", "for", "macro", "call", "filter", "with", "block", "raw"}


def _unclosed_block_line(source: str) -> int | None:
    """Line of the block tag left open (Jinja itself reports the end of the document)."""
    open_blocks: list[int] = []
    for match in _BLOCK_TAG.finditer(source):
        keyword = match.group(1)
        if keyword in _BLOCK_OPENERS:
            open_blocks.append(source.count("\n", 0, match.start()) + 1)
        elif keyword.startswith("end") and open_blocks:
            open_blocks.pop()
    return open_blocks[-1] if open_blocks else None


def _line_of(text: str, needle: str) -> int | None:
    index = text.find(needle)
    return None if index < 0 else text.count("\n", 0, index) + 1


def load_templates(paths: Paths, config: ProjectConfig, compiler: MjmlCompiler | None = None) -> TemplateSet:
    """Compile every template of an enabled campaign in every locale; ProjectError if any is broken."""
    result = compile_templates(paths, config, sending_template_names(config), compiler=compiler)
    errors = [p for p in result.problems if p.severity == "error"]
    if errors:
        raise ProjectError(errors)
    return result.template_set
