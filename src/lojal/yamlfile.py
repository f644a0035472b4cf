"""YAML files parsed with their positions, and validated into pydantic models with
`path:line:col` problems that name what is wrong and how to fix it.

Marketers edit YAML; a mistake must point at the exact key or value. PyYAML's composer gives
each node its position; we build plain data from the nodes and remember, for every path of
keys/indices, where its key and its value start.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from lojal.errors import Problem, ProjectError

PathKey = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass
class YamlDocument:
    path: str  # as shown to the user
    data: Any
    value_pos: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_pos: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: PathKey, *, prefer_key: bool = False) -> tuple[int | None, int | None]:
        """Best (line, col) for a location: the deepest known ancestor when loc itself is unknown."""
        loc = tuple(loc)
        while True:
            if prefer_key and loc in self.key_pos:
                return self.key_pos[loc]
            if loc in self.value_pos:
                return self.value_pos[loc]
            if loc in self.key_pos:
                return self.key_pos[loc]
            if not loc:
                return (None, None)
            loc = loc[:-1]

    def problem(self, loc: PathKey, message: str, *, prefer_key: bool = False) -> Problem:
        line, col = self.position(loc, prefer_key=prefer_key)
        return Problem(self.path, line, col, message)


# Bounds that keep a small hostile file small: no aliases (a few hundred bytes of them can expand
# to gigabytes, or refer to themselves), no merge keys, limited nesting and size, no NUL or other
# characters YAML forbids, numbers finite.
MAX_YAML_BYTES = 512 * 1024
MAX_DEPTH = 40
MAX_DIGITS = 100
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")


class _Builder(yaml.SafeLoader):
    """SafeLoader composing nodes with the bounds above (every violation a _YamlShapeError)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _YamlShapeError(event, f"YAML aliases (*{event.anchor}) are not allowed: write the value out "
                                  "in full")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _YamlShapeError(self.peek_event(), f"nested more than {MAX_DEPTH} levels deep: "
                                      "simplify the structure")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _mark(node: yaml.Node | yaml.Event) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(loader: _Builder, node: yaml.Node, loc: PathKey, doc: YamlDocument) -> Any:
    doc.value_pos[loc] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _YamlShapeError(key_node, "merge keys (<<) are not allowed: write the keys out in full")
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise _YamlShapeError(key_node, "a key must be a plain word")
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise _YamlShapeError(key_node, f"duplicate key '{key}': remove one of them")
            doc.key_pos[loc + (key,)] = _mark(key_node)
            out[key] = _build(loader, value_node, loc + (key,), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, loc + (i,), doc) for i, item in enumerate(node.value)]
    if node.tag == "tag:yaml.org,2002:int" and len(node.value) > MAX_DIGITS:
        raise _YamlShapeError(node, f"number with {len(node.value)} digits is far too large: write a number "
                              "such as 100")
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError as exc:  # e.g. 2024-02-30 matches YAML's date pattern but is no date
        raise _YamlShapeError(node, f"cannot read '{node.value[:40]}': {exc}; fix the value or quote it") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _YamlShapeError(node, f"'{node.value}' is not a finite number: write a number such as 100")
    return value


class _YamlShapeError(Exception):
    def __init__(self, node: yaml.Node | yaml.Event, message: str):
        self.node = node
        self.message = message


def parse_yaml(text: str, display_path: str) -> YamlDocument:
    """Parse YAML text; raise ProjectError with the position of a syntax error."""
    doc = YamlDocument(display_path, None)
    check_text(text, display_path)
    tab_line = next((i for i, line in enumerate(text.splitlines(), 1) if line[: len(line) - len(line.lstrip())].count("\t")), None)
    if tab_line is not None:
        col = text.splitlines()[tab_line - 1].index("\t") + 1
        raise ProjectError([Problem(display_path, tab_line, col, "tab character in indentation: YAML indents with spaces only; replace the tab with spaces")])
    loader = _Builder(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise ProjectError([Problem(display_path, 1, 1, "file is empty: it needs at least the required keys")])
        doc.data = _build(loader, root, (), doc)
    except yaml.reader.ReaderError as exc:
        raise ProjectError([Problem(display_path, None, None, f"cannot read: {exc.reason}")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{exc.context}, {what}"
        raise ProjectError([Problem(display_path, line, col, f"YAML syntax error: {what}; check indentation, colons and quotes")]) from None
    except _YamlShapeError as exc:
        line, col = _mark(exc.node)
        raise ProjectError([Problem(display_path, line, col, exc.message)]) from None
    finally:
        loader.dispose()
    return doc


def check_text(text: str, display_path: str) -> None:
    """Refuse, with its position, what no marketer file needs: NUL and other control
    characters YAML forbids, and more than MAX_YAML_BYTES."""
    if len(text) > MAX_YAML_BYTES:
        raise ProjectError([Problem(display_path, None, None, f"file is {len(text) // 1024} KB; files here are at "
                                    f"most {MAX_YAML_BYTES // 1024} KB: split or shorten it")])
    found = _FORBIDDEN_CHARS.search(text)
    if found:
        line = text.count("\n", 0, found.start()) + 1
        col = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
        raise ProjectError([Problem(display_path, line, col, f"control character U+{ord(found.group()):04X} is not "
                                    "allowed in YAML: delete it (the file may be binary or damaged)")])


def read_yaml(path: Path, display_path: str | None = None) -> YamlDocument:
    shown = display_path or str(path)
    try:
        if path.stat().st_size > MAX_YAML_BYTES * 4:
            raise ProjectError([Problem(shown, None, None, f"file is {path.stat().st_size // 1024} KB; files here are "
                                        f"at most {MAX_YAML_BYTES // 1024} KB: split or shorten it")])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProjectError([Problem(shown, None, None, f"not UTF-8 text ({exc.reason}); save the file as UTF-8")]) from None
    except OSError as exc:
        raise ProjectError([Problem(shown, None, None, f"cannot read file: {exc.strerror}")]) from None
    return parse_yaml(text, shown)


def _fields_at(model: type[BaseModel], loc: PathKey) -> list[str]:
    """Field names of the sub-model reached by following loc from model (best effort)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            current = _inner_model(current)
            if isinstance(part, int):
                continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = current.model_fields[part].annotation
    current = _inner_model(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _in_data(data: Any, loc: PathKey) -> PathKey:
    """`loc` without pydantic's own parts (union members such as `list[str]`, validator names):
    only the keys and indices that exist in the data, then the rest of the key path as is."""
    kept: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif isinstance(part, str) and (part.startswith("function-") or "[" in part or part in _TYPE_TAGS
                                        or part[:1].isupper()):
            continue
        else:
            kept.extend(loc[i:])
            break
        kept.append(part)
    return tuple(kept)


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "date", "datetime", "url", "email",
              "literal", "tagged-union", "union", "json-or-python", "lax-or-strict", "chain", "is-instance"}


def pydantic_problems(doc: YamlDocument, exc: ValidationError, model: type[BaseModel], base: PathKey = ()) -> list[Problem]:
    problems = []
    suggested: set[PathKey] = set()  # (parent..., key) a misspelt key already points to
    missing: list[PathKey] = []
    messages: dict[PathKey, list[str]] = {}  # one problem per place: union branches joined
    for err in exc.errors(include_url=False):
        loc = base + _in_data(_at(doc.data, base), tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            allowed = _fields_at(model, loc[len(base):-1])
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if close:
                suggested.add(loc[:-1] + (close[0],))
                hint = f" (did you mean '{close[0]}'?)"
            else:
                hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            problems.append(doc.problem(loc, f"unknown key '{key}'{hint}", prefer_key=True))
        elif err["type"] == "missing":
            missing.append(loc)
        else:
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            found = messages.setdefault(loc, [])
            if msg not in found:
                found.append(msg)
    for loc, found in messages.items():
        field_name = ".".join(str(p) for p in loc)
        msg = found[0] + "".join(" or " + m.removeprefix("Input should be ") for m in found[1:])
        problems.append(doc.problem(loc, f"{field_name}: {msg}" if field_name else msg))
    problems += [doc.problem(loc, f"missing required key '{loc[-1]}'") for loc in missing if loc not in suggested]
    return sorted(set(problems), key=lambda p: (p.line or 0, p.col or 0, p.message))


def _at(data: Any, loc: PathKey) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def validate_document(doc: YamlDocument, model: type[M], context: dict | None = None) -> M:
    """Validate a parsed document into `model`, raising ProjectError with every problem."""
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise ProjectError(pydantic_problems(doc, exc, model)) from None


def load_model(path: Path, model: type[M], display_path: str | None = None, context: dict | None = None) -> M:
    return validate_document(read_yaml(path, display_path), model, context)
