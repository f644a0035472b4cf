"""Reading MJML sources: resolving `mj-include`, remembering where every line came from, and
checking the MJML structure with file:line positions.

Lojal resolves `<mj-include path="...">` itself, before any compiler sees the document: the Python
port cannot include into `mj-head`, MJML 5 ignores includes unless told otherwise, and a
self-contained document compiles the same way with every compiler. Each line of the expanded
document keeps its origin (file, line) so errors point at the file the marketer edits.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable

from lojal.errors import Problem

INCLUDE = re.compile(r"<mj-include\s+path\s*=\s*\"([^\"]+)\"\s*/?>(?:\s*</mj-include>)?")
MAX_INCLUDE_DEPTH = 8

Origin = tuple[str, int]


class SourceError(Exception):
    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class ExpandedSource:
    text: str
    origins: list[Origin]  # origins[i] is the (file, line) of line i+1 of text

    def origin(self, line: int | None) -> Origin:
        if not line or not self.origins:
            return (self.origins[0][0] if self.origins else "?", 1)
        return self.origins[min(line, len(self.origins)) - 1]


ANY_INCLUDE = re.compile(r"<\s*mj-include\b", re.IGNORECASE)
MAX_SOURCE_BYTES = 1024 * 1024


def inside(root: Path, target: Path) -> bool:
    """Whether `target`, with every symlink resolved, is inside `root` (also resolved)."""
    return target.resolve().is_relative_to(root.resolve())


def stray_include(text: str) -> int | None:
    """Offset of an mj-include that `expand_includes` did not resolve (the compiler must never
    see one: it would read any path it names)."""
    found = ANY_INCLUDE.search(text)
    return None if found is None else found.start()


def expand_includes(path: Path, shown: Callable[[Path], str], root: Path, depth: int = 0) -> ExpandedSource:
    """The document at `path` with every mj-include replaced by the included file's content.
    Every file read must be inside `root` (templates/) once symlinks are resolved."""
    name = shown(path)
    if not inside(root, path):
        raise SourceError(Problem(name, None, None, "resolves outside templates/ (a symlink?): templates and "
                                  "the files they include must be inside the templates folder"))
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise SourceError(Problem(name, None, None, f"file is larger than {MAX_SOURCE_BYTES // 1024} KB"))
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(Problem(name, None, None, f"not UTF-8 text ({exc.reason}); save the file as UTF-8")) from None
    except OSError as exc:
        raise SourceError(Problem(name, None, None, f"cannot read: {exc.strerror}")) from exc
    if "\x00" in source:
        line = source.count("\n", 0, source.index("\x00")) + 1
        raise SourceError(Problem(name, line, None, "contains a NUL character (a binary file?)"))
    out_lines: list[str] = []
    origins: list[Origin] = []
    for number, line in enumerate(source.split("\n"), start=1):
        match = INCLUDE.search(line)
        if match is None:
            stray = stray_include(line)
            if stray is not None:
                raise SourceError(Problem(name, number, stray + 1, 'write an include on one line as '
                                          '<mj-include path="file.mjml" /> (double quotes, nothing else)'))
            out_lines.append(line)
            origins.append((name, number))
            continue
        target = path.parent / match.group(1)
        if not inside(root, target):
            raise SourceError(Problem(name, number, match.start() + 1,
                                      f"mj-include path '{match.group(1)}' is outside templates/: includes must "
                                      "stay inside the templates folder"))
        target = target.resolve()
        if depth >= MAX_INCLUDE_DEPTH:
            raise SourceError(Problem(name, number, match.start() + 1, "mj-include nested too deeply (a file includes itself?)"))
        if not target.is_file():
            raise SourceError(Problem(name, number, match.start() + 1, f"mj-include: file not found: {match.group(1)}"))
        included = expand_includes(target, shown, root, depth + 1)
        out_lines.append(line[: match.start()])
        origins.append((name, number))
        out_lines.extend(included.text.split("\n"))
        origins.extend(included.origins)
        out_lines.append(line[match.end():])
        origins.append((name, number))
    return ExpandedSource("\n".join(out_lines), origins)


# Parents each MJML element may appear in (the subset of MJML's validation rules templates need).
ALLOWED_PARENTS: dict[str, set[str]] = {
    "mjml": {""},
    "mj-head": {"mjml"},
    "mj-body": {"mjml"},
    "mj-attributes": {"mj-head"},
    "mj-all": {"mj-attributes"},
    "mj-class": {"mj-attributes"},
    "mj-breakpoint": {"mj-head"},
    "mj-font": {"mj-head"},
    "mj-html-attributes": {"mj-head"},
    "mj-html-attribute": {"mj-selector"},
    "mj-selector": {"mj-html-attributes"},
    "mj-preview": {"mj-head"},
    "mj-style": {"mj-head"},
    "mj-title": {"mj-head"},
    "mj-wrapper": {"mj-body"},
    "mj-section": {"mj-body", "mj-wrapper"},
    "mj-hero": {"mj-body", "mj-wrapper"},
    "mj-group": {"mj-section"},
    "mj-column": {"mj-section", "mj-group"},
    "mj-raw": {"mj-head", "mj-body", "mj-wrapper", "mj-section", "mj-group", "mj-column", "mj-hero", "mj-attributes"},
}
CONTENT_ELEMENTS = {"mj-text", "mj-image", "mj-button", "mj-divider", "mj-spacer", "mj-table", "mj-social",
                    "mj-navbar", "mj-carousel", "mj-accordion"}
CHILD_ELEMENTS = {"mj-social-element": {"mj-social"}, "mj-navbar-link": {"mj-navbar"},
                  "mj-carousel-image": {"mj-carousel"}, "mj-accordion-element": {"mj-accordion"},
                  "mj-accordion-title": {"mj-accordion-element"}, "mj-accordion-text": {"mj-accordion-element"}}
# Elements whose content is HTML, not MJML: tags inside them are not checked as MJML.
HTML_CONTENT = {"mj-text", "mj-raw", "mj-button", "mj-table", "mj-style", "mj-title", "mj-preview",
                "mj-navbar-link", "mj-social-element", "mj-accordion-title", "mj-accordion-text"}
VOID_HTML = {"br", "img", "hr", "meta", "link", "input", "col", "wbr", "source", "area", "base"}


class _StructureChecker(HTMLParser):
    def __init__(self, source: ExpandedSource):
        super().__init__(convert_charrefs=True)
        self.source = source
        self.stack: list[tuple[str, Origin, int]] = []
        self.problems: list[Problem] = []

    def _problem(self, message: str) -> None:
        line, col = self.getpos()
        path, src_line = self.source.origin(line)
        self.problems.append(Problem(path, src_line, col + 1, message))

    def _inside_html(self) -> bool:
        return any(tag in HTML_CONTENT for tag, _, _ in self.stack)

    def handle_starttag(self, tag: str, attrs) -> None:
        if self._inside_html():
            if tag.startswith("mj-"):
                self._problem(f"<{tag}> cannot be inside <{self._html_parent()}> (its content is HTML)")
            elif tag not in VOID_HTML:
                self.stack.append((tag, self.source.origin(self.getpos()[0]), self.getpos()[1]))
            return
        parent = self.stack[-1][0] if self.stack else ""
        allowed = ALLOWED_PARENTS.get(tag) or CHILD_ELEMENTS.get(tag)
        if tag in CONTENT_ELEMENTS:
            allowed = {"mj-column", "mj-hero"}
        if parent == "mj-attributes" and (allowed is not None or tag == "mj-class"):
            allowed = {"mj-attributes"}  # defaults for any element are set here
        if allowed is None:
            if tag.startswith("mj-"):
                known = [*ALLOWED_PARENTS, *CONTENT_ELEMENTS, *CHILD_ELEMENTS]
                close = difflib.get_close_matches(tag, known, n=1)
                self._problem(f"unknown MJML element <{tag}>" + (f"; did you mean <{close[0]}>?" if close else
                                                                "; see the element list at documentation.mjml.io"))
            else:
                self._problem(f"<{tag}> must be inside mj-text, mj-raw or mj-button (HTML is not MJML)")
        elif parent not in allowed:
            where = f"<{parent}>" if parent else "the top level"
            self._problem(f"<{tag}> cannot be inside {where}; it belongs in {', '.join(f'<{p}>' for p in sorted(allowed) if p)}")
        self.stack.append((tag, self.source.origin(self.getpos()[0]), self.getpos()[1]))

    def handle_startendtag(self, tag: str, attrs) -> None:
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def _html_parent(self) -> str:
        return next(tag for tag, _, _ in reversed(self.stack) if tag in HTML_CONTENT)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_HTML:
            return
        if not self.stack:
            self._problem(f"</{tag}> closes nothing")
            return
        open_tag, (path, line), col = self.stack[-1]
        if open_tag == tag:
            self.stack.pop()
            return
        self._problem(f"</{tag}> does not match <{open_tag}> opened at {path}:{line}:{col + 1}")
        if any(t == tag for t, _, _ in self.stack):
            while self.stack and self.stack[-1][0] != tag:
                self.stack.pop()
            self.stack.pop()

    def close(self) -> None:
        super().close()
        for tag, (path, line), col in self.stack:
            self.problems.append(Problem(path, line, col + 1, f"<{tag}> is never closed"))


def check_structure(source: ExpandedSource) -> list[Problem]:
    """MJML structure errors (unclosed/mismatched tags, elements in the wrong place) with positions."""
    checker = _StructureChecker(source)
    checker.feed(source.text)
    checker.close()
    if not source.text.lstrip().startswith("<mjml"):
        path, _ = source.origin(1)
        checker.problems.insert(0, Problem(path, 1, 1, "an e-mail template must start with <mjml>"))
    return checker.problems
