"""`lojal check --compare-mjml`: the shop's templates compiled by both MJML compilers.

Each compiled (template, locale) source goes through official MJML 5 (Node) as well: official
MJML's validation errors are reported at the template line they concern, and where the Python
port's output shows something else (other text, links or images, in the same order) than the
official output, the first difference is reported, so a marketer can choose `mjml: official` in
config/rendering.yaml or adjust the template.
"""

from __future__ import annotations

import difflib
from html.parser import HTMLParser

from lojal.errors import Problem
from lojal.paths import Paths
from lojal.render.mjml_compile import MjmlCompileError, NodeMjml, PythonMjml, node_mjml_available
from lojal.render.sources import ExpandedSource
from lojal.render.templates import TemplateSet


class _Visible(HTMLParser):
    """What a reader sees, in order: text runs, link targets and image sources (no head, no
    Outlook-only markup, which lives in comments)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in ("head", "style", "title"):
            self._skip += 1
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.items.append(f"link {attributes['href']}")
        if tag == "img" and attributes.get("src"):
            self.items.append(f"image {attributes['src']}")

    def handle_endtag(self, tag) -> None:
        if tag in ("head", "style", "title") and self._skip:
            self._skip -= 1

    def handle_data(self, data) -> None:
        text = " ".join(data.split())
        if text and not self._skip:
            self.items.append(f"text {text}")


def visible_items(html: str) -> list[str]:
    parser = _Visible()
    parser.feed(html)
    parser.close()
    return parser.items


def first_difference(python_html: str, official_html: str) -> str | None:
    ours, theirs = visible_items(python_html), visible_items(official_html)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=theirs, b=ours, autojunk=False).get_opcodes():
        if tag != "equal":
            official = theirs[i1] if i1 < i2 else "nothing"
            python = ours[j1] if j1 < j2 else "nothing"
            return f"official MJML shows {official!r} where the Python port shows {python!r}"
    return None


def compare_compilers(paths: Paths, templates: TemplateSet, locale: str = "en") -> list[Problem]:
    if not node_mjml_available():
        return [Problem(paths.relative(paths.templates_dir), None, None, "--compare-mjml needs `node` and the "
                        "official MJML (`npm install --prefix bench/node`); nothing was compared", severity="warning")]
    problems: list[Problem] = []
    with NodeMjml() as node:
        for (name, loc), compiled in sorted(templates.compiled.items()):
            if loc != locale:
                continue
            origins = compiled.origins
            located = ExpandedSource(compiled.mjml_source, origins)
            try:
                official, errors = node.compile_with_errors(compiled.mjml_source)
            except MjmlCompileError as exc:
                problems.append(Problem(located.origin(1)[0], None, None, f"official MJML failed: {exc}"))
                continue
            for error in errors:
                if "{{" in str(error.get("message")) or "{%" in str(error.get("message")):
                    continue  # a Jinja value is filled in before sending, not an MJML attribute error
                path, line = located.origin(error.get("line"))
                problems.append(Problem(path, line, None, f"official MJML: {error.get('message')} "
                                        f"(<{error.get('tag')}>); fix it here, official MJML would reject the template "
                                        "in strict mode"))
            try:
                difference = first_difference(PythonMjml().compile(compiled.mjml_source), official)
            except MjmlCompileError as exc:
                difference = f"the Python port fails ({exc})"
            if difference:
                problems.append(Problem(located.origin(1)[0], None, None, f"template {name} ({loc}): the Python MJML "
                                        f"port and official MJML differ: {difference}; set mjml: official in "
                                        "config/rendering.yaml or simplify that part", severity="warning"))
    return problems
