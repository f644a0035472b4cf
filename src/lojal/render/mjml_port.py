"""What the Python MJML port leaves out or gets wrong, done around it (pure functions).

`prepare(mjml)` takes out what would crash the port and remembers it; `finish(html, prepared)` puts
it back into the port's HTML the way official MJML 5 does:

- `<mj-style inline="inline">`: the CSS is inlined into `style` attributes by css-inline (a
  maintained Rust inliner), as official MJML does with juice. Jinja tags are swapped for inert
  placeholders first (statements between table rows become HTML comments, which the HTML parser
  leaves where they are), so the inliner cannot move `{% if %}` out of a table.
- `<mj-font>` naming one of the port's built-in fonts (Open Sans, Droid Sans, Lato, Roboto, Ubuntu)
  made the port fail with "AssertionError: Not yet implemented"; the declaration is taken out and
  its URL replaces the built-in one in the output, which is what official MJML does.
- `<!--[if !mso><!-->` (navbar, carousel) is the port's typo for `<!--[if !mso]><!-->`: Outlook
  would show the hidden markup.
- `<img width="206.4">`: Outlook reads the attribute as a whole number of pixels; official MJML
  writes the whole pixels (rounded down).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The port's built-in fonts (mjml/mjml2html.py, same as official MJML's defaults).
BUILTIN_FONTS = {
    "Open Sans": "https://fonts.googleapis.com/css?family=Open+Sans:300,400,500,700",
    "Droid Sans": "https://fonts.googleapis.com/css?family=Droid+Sans:300,400,500,700",
    "Lato": "https://fonts.googleapis.com/css?family=Lato:300,400,500,700",
    "Roboto": "https://fonts.googleapis.com/css?family=Roboto:300,400,500,700",
    "Ubuntu": "https://fonts.googleapis.com/css?family=Ubuntu:300,400,500,700",
}

_INLINE_STYLE = re.compile(r"<mj-style\b([^>]*)>(.*?)</mj-style>", re.DOTALL | re.IGNORECASE)
_INLINE_ATTR = re.compile(r"""\binline\s*=\s*["']inline["']""", re.IGNORECASE)
_FONT = re.compile(r"<mj-font\b([^>]*?)/?>(?:\s*</mj-font>)?", re.IGNORECASE)
_ATTR = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_TOKEN = re.compile(r"<!--LOJALJ(\d+)Z-->|LOJALJ(\d+)Z")
_BAD_CONDITIONAL = "<!--[if !mso><!-->"
_GOOD_CONDITIONAL = "<!--[if !mso]><!-->"
_FRACTIONAL_IMG_WIDTH = re.compile(r'(<img\b[^>]*?\swidth=")(\d+)\.\d+(")', re.IGNORECASE)


@dataclass(frozen=True)
class Prepared:
    mjml: str
    inline_css: str = ""
    font_urls: dict[str, str] = field(default_factory=dict)  # built-in URL -> the template's URL


def _attributes(text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _ATTR.finditer(text)}


def _keep_lines(text: str) -> str:
    """What replaces a removed element: its line breaks, so later line numbers stay right."""
    return "\n" * text.count("\n")


def prepare(mjml: str) -> Prepared:
    css: list[str] = []

    def take_style(match: re.Match) -> str:
        if not _INLINE_ATTR.search(match.group(1)):
            return match.group(0)
        css.append(match.group(2))
        return _keep_lines(match.group(0))

    fonts: dict[str, str] = {}

    def take_font(match: re.Match) -> str:
        attributes = _attributes(match.group(1))
        name, href = attributes.get("name", "").strip(), attributes.get("href", "").strip()
        if name in BUILTIN_FONTS and href:
            fonts[BUILTIN_FONTS[name]] = href
            return _keep_lines(match.group(0))
        return match.group(0)

    text = _INLINE_STYLE.sub(take_style, mjml)
    text = _FONT.sub(take_font, text)
    return Prepared(text, "\n".join(css), fonts)


def finish(html: str, prepared: Prepared) -> str:
    for builtin, url in prepared.font_urls.items():
        html = html.replace(builtin, url)
    html = fix_output(html)
    if prepared.inline_css.strip():
        html = inline_css(html, prepared.inline_css)
    return html


def fix_output(html: str) -> str:
    """The port's output faults that reach Outlook users, corrected."""
    html = html.replace(_BAD_CONDITIONAL, _GOOD_CONDITIONAL)
    return _FRACTIONAL_IMG_WIDTH.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}", html)


def inline_css(html: str, css: str) -> str:
    """`css` inlined into the matching elements' `style` attributes; the document's own <style>
    blocks (media queries) are kept and not inlined, as official MJML does. Jinja survives."""
    import css_inline

    protected, tags = protect_jinja(html)
    inliner = css_inline.CSSInliner(extra_css=css, inline_style_tags=False, keep_style_tags=True,
                                    keep_link_tags=True, load_remote_stylesheets=False)
    return restore_jinja(inliner.inline(protected), tags)


def protect_jinja(html: str) -> tuple[str, list[str]]:
    """Jinja tags replaced by placeholders an HTML parser leaves in place: a statement in text
    becomes a comment (allowed anywhere, even between table rows), everything else a plain word."""
    tags: list[str] = []
    out: list[str] = []
    position = 0
    for match in _JINJA.finditer(html):
        before = html[position:match.start()]
        out.append(before)
        index = len(tags)
        tags.append(match.group(0))
        token = f"LOJALJ{index}Z"
        prefix = "".join(out)
        in_comment = prefix.rfind("<!--") > prefix.rfind("-->")
        in_tag = prefix.rfind("<") > prefix.rfind(">")
        statement = not match.group(0).startswith("{{")
        out.append(f"<!--{token}-->" if statement and not in_comment and not in_tag else token)
        position = match.end()
    out.append(html[position:])
    return "".join(out), tags


def restore_jinja(html: str, tags: list[str]) -> str:
    return _TOKEN.sub(lambda m: tags[int(m.group(1) or m.group(2))], html)
