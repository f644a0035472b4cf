"""YAML files parsed with their positions, and validated into pydantic models with
`path:line:col` problems that name what is wrong and how to fix it.

Marketers edit YAML; a mistake must point at the exact key or value. PyYAML's composer gives
each node its position; we build plain data from the nodes and remember, for every path of
keys/indices, where its key and its value start.
"""

from __future__ import annotations

import difflib
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


class _Builder(yaml.SafeLoader):
    pass


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(loader: _Builder, node: yaml.Node, loc: PathKey, doc: YamlDocument) -> Any:
    doc.value_pos[loc] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
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
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as exc:  # e.g. 2024-02-30 matches YAML's date pattern but is no date
        raise _YamlShapeError(node, f"cannot read '{node.value}': {exc}; fix the value or quote it") from None


class _YamlShapeError(Exception):
    def __init__(self, node: yaml.Node, message: str):
        self.node = node
        self.message = message


def parse_yaml(text: str, display_path: str) -> YamlDocument:
    """Parse YAML text; raise ProjectError with the position of a syntax error."""
    doc = YamlDocument(display_path, None)
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


def read_yaml(path: Path, display_path: str | None = None) -> YamlDocument:
    shown = display_path or str(path)
    try:
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


def pydantic_problems(doc: YamlDocument, exc: ValidationError, model: type[BaseModel], base: PathKey = ()) -> list[Problem]:
    problems = []
    suggested: set[PathKey] = set()  # (parent..., key) a misspelt key already points to
    missing: list[PathKey] = []
    for err in exc.errors(include_url=False):
        loc = base + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        field_name = ".".join(str(p) for p in loc)
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
            problems.append(doc.problem(loc, f"{field_name}: {msg}" if field_name else msg))
    problems += [doc.problem(loc, f"missing required key '{loc[-1]}'") for loc in missing if loc not in suggested]
    return sorted(set(problems), key=lambda p: (p.line or 0, p.col or 0, p.message))


def validate_document(doc: YamlDocument, model: type[M], context: dict | None = None) -> M:
    """Validate a parsed document into `model`, raising ProjectError with every problem."""
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise ProjectError(pydantic_problems(doc, exc, model)) from None


def load_model(path: Path, model: type[M], display_path: str | None = None, context: dict | None = None) -> M:
    return validate_document(read_yaml(path, display_path), model, context)
