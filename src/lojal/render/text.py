"""The plain-text alternative, derived from the same compiled template as the HTML.

At load time the compiled HTML (Jinja expressions still intact) is turned into a text template:
markup is dropped, blocks become lines, links become `label (url)` (image-only links are left
out), hidden preheader text and
Outlook conditionals are skipped. Per recipient only that text template is rendered, so the text
part costs one more Jinja render, not an HTML parse.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

BLOCK_TAGS = {"p", "div", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "br", "hr"}
SKIPPED_TAGS = {"head", "style", "title", "script"}
# Only runs that need changing match: replacing every single space would cost more than the render.
_SPACES = re.compile(r"[ \t\r\f\v]{2,}|[\t\r\f\v]")
_SPACE_AROUND_BREAK = re.compile(r" \n ?|\n ")
_BLANK_LINES = re.compile(r"\n{3,}")
# A line holding only {% for %}, {% if %}, {% endfor %}...: see _glue_statement.
_STATEMENT_LINE = re.compile(r"(\n*)^(\{%[^\n]*?%\})$(\n*)", re.MULTILINE)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.hidden_stack: list[bool] = []
        self.link: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in SKIPPED_TAGS:
            self.skip_depth += 1
            return
        if tag in ("div", "span"):
            style = (attributes.get("style") or "").replace(" ", "").lower()
            hidden = "display:none" in style
            self.hidden_stack.append(hidden)
            if hidden:
                self.skip_depth += 1
        if tag in BLOCK_TAGS:
            self.parts.append("\n")
        if tag == "a" and not self.skip_depth:
            self.link = (attributes.get("href") or "", [])

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TAGS:
            self.skip_depth -= 1
            return
        if tag in ("div", "span") and self.hidden_stack and self.hidden_stack.pop():
            self.skip_depth -= 1
        if tag == "a" and self.link is not None:
            self._close_link()
        if tag in BLOCK_TAGS:
            self.parts.append("\n")

    def _close_link(self) -> None:
        href, label_parts = self.link  # type: ignore[misc]
        self.link = None
        label = " ".join(" ".join(label_parts).split())
        # Image-only links (logo, product pictures) repeat the text link next to them: left out.
        if not label:
            return
        if not href or href.startswith("#") or label == href:
            self.parts.append(label)
        else:
            self.parts.append(f"{label} ({href})")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.link is not None:
            self.link[1].append(data)
        else:
            self.parts.append(data)


def text_template_from_html(compiled_html: str) -> str:
    """A Jinja text template with the content of `compiled_html` (whose Jinja is left intact)."""
    extractor = _TextExtractor()
    extractor.feed(compiled_html)
    extractor.close()
    return _STATEMENT_LINE.sub(_glue_statement, tidy_text("".join(extractor.parts)))


def _glue_statement(match: re.Match) -> str:
    # The breaks around the statement go before it (at most one blank line), none after: a loop
    # body or a false condition then adds no blank lines of its own.
    breaks = min(2, len(match.group(1)) + len(match.group(3)))
    return "\n" * breaks + match.group(2)


def tidy_text(text: str) -> str:
    """One space between words, no spaces around line breaks, at most one blank line in a row.

    Runs per recipient, so each pass only runs when a cheap substring test says it is needed.
    """
    if "  " in text or "\t" in text or "\r" in text:
        text = _SPACES.sub(" ", text)
    if " \n" in text or "\n " in text:
        text = _SPACE_AROUND_BREAK.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip() + "\n"
