"""Strings in four languages: `templates/_shared/strings.yaml` plus `templates/<template>/strings.yaml`.

Each string is one key with its translations side by side, so a translator sees every language of a
sentence at once and a missing one stands out:

    subject:
      en: "Thank you for your order, {{ customer.first_name }}"
      nb: "Takk for bestillingen, {{ customer.first_name }}"
      ...

A template writes `{{ t.subject }}`; when the (template, locale) is compiled, that placeholder is
replaced by the string in the locale (English when the locale lacks it, reported by `lojal check`).
Strings may use Jinja expressions and filters. Keys of a template override shared keys.
`reasons:` (shared only) translates recommendation reason codes; its strings use `{param}`
placeholders filled from the recommendation's `reason_params`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lojal.config import LOCALES
from lojal.errors import Problem, ProjectError
from lojal.yamlfile import YamlDocument, read_yaml

FALLBACK_LOCALE = "en"
SHARED_DIR = "_shared"
STRINGS_FILE = "strings.yaml"
STRING_PLACEHOLDER = re.compile(r"\{\{-?\s*t\.([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}")


@dataclass(frozen=True)
class Entry:
    """One key's translations and where it is defined (for messages)."""

    key: str
    translations: dict[str, str]
    path: str
    line: int


@dataclass
class Catalog:
    entries: dict[str, Entry] = field(default_factory=dict)
    reasons: dict[str, Entry] = field(default_factory=dict)

    def text(self, key: str, locale: str) -> tuple[str, bool] | None:
        """(text, fell_back_to_english) or None when the key is unknown."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        return _pick(entry, locale)

    def reason(self, code: str, locale: str) -> str | None:
        entry = self.reasons.get(code)
        return None if entry is None else _pick(entry, locale)[0]

    def merged_with(self, other: "Catalog") -> "Catalog":
        return Catalog({**self.entries, **other.entries}, {**self.reasons, **other.reasons})


def _pick(entry: Entry, locale: str) -> tuple[str, bool]:
    if locale in entry.translations:
        return entry.translations[locale], False
    return entry.translations.get(FALLBACK_LOCALE, ""), True


def read_catalog(path: Path, shown: str, problems: list[Problem]) -> Catalog:
    """Parse one strings.yaml (through lojal.yamlfile, with its bounds); problems are appended, never raised."""
    if not path.exists():
        return Catalog()
    try:
        doc = read_yaml(path, shown)
    except ProjectError as exc:
        if exc.problems and exc.problems[0].message.startswith("file is empty"):
            return Catalog()
        problems.extend(exc.problems)
        return Catalog()
    document = doc.data if doc.data is not None else {}
    if not isinstance(document, dict):
        problems.append(Problem(shown, 1, 1, "expected a mapping of string keys to {en: ..., nb: ..., sv: ..., da: ...}"))
        return Catalog()
    document = dict(document)
    reasons_doc = document.pop("reasons", None) or {}
    catalog = Catalog()
    catalog.entries = _entries(document, doc, (), shown, problems)
    if reasons_doc:
        if isinstance(reasons_doc, dict):
            catalog.reasons = _entries(reasons_doc, doc, ("reasons",), shown, problems)
        else:
            line, col = doc.position(("reasons",))
            problems.append(Problem(shown, line, col, "'reasons' must map reason codes to their translations"))
    return catalog


def _entries(document: dict, doc: YamlDocument, base: tuple, shown: str, problems: list[Problem]) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for key, value in document.items():
        line = doc.key_pos.get(base + (key,), (1, 1))[0]
        if not isinstance(value, dict):
            problems.append(Problem(shown, line, 1, f"'{key}' must list its translations, e.g. {key}: {{en: ..., nb: ...}}"))
            continue
        if not all(isinstance(text, (str, int, float)) or text is None for text in value.values()):
            problems.append(Problem(shown, line, 1, f"'{key}': each translation is one line of text"))
            continue
        unknown = sorted(set(value) - set(LOCALES))
        if unknown:
            problems.append(Problem(shown, line, 1, f"'{key}' has unknown language(s) {unknown}; use {list(LOCALES)}"))
        translations = {lang: _one_line(text) for lang, text in value.items() if lang in LOCALES and text is not None}
        if FALLBACK_LOCALE not in translations:
            problems.append(Problem(shown, line, 1, f"'{key}' has no English (en) text, which is the fallback"))
        entries[str(key)] = Entry(str(key), translations, shown, line)
    return entries


def _one_line(text: Any) -> str:
    # Strings replace a placeholder inside one line of MJML; keeping them on one line keeps
    # every later line number in the template pointing at the right source line.
    return " ".join(str(text).split())


def missing_translations(catalog: Catalog) -> list[Problem]:
    """A warning per (key, locale) that falls back to English."""
    problems = []
    for entry in [*catalog.entries.values(), *catalog.reasons.values()]:
        for locale in LOCALES:
            if locale not in entry.translations and FALLBACK_LOCALE in entry.translations:
                problems.append(Problem(entry.path, entry.line, 1,
                                        f"'{entry.key}' has no {locale} translation; English is used",
                                        severity="warning"))
    return problems


def substitute_strings(source: str, catalog: Catalog, locale: str) -> tuple[str, list[str]]:
    """Replace every {{ t.key }} with its text in `locale`; return the result and unknown keys."""
    unknown: list[str] = []

    def replace(match: re.Match) -> str:
        found = catalog.text(match.group(1), locale)
        if found is None:
            unknown.append(match.group(1))
            return match.group(0)
        return found[0]

    return STRING_PLACEHOLDER.sub(replace, source), unknown
