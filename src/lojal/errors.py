"""Every exception Lojal raises, in one place.

    LojalError                      base of everything below
    ├── ProjectError                marketer/config files are invalid (carries Problems)
    ├── DataImportError             a CSV/Parquet import was rejected (carries Problems, nothing written)
    ├── StoreError                  the database is missing, unreachable or not initialised
    ├── RenderError                 a template failed for one recipient (undefined variable, ...)
    ├── HeaderInjectionError        CR/LF or other control characters in a header value
    └── DeliveryError               a delivery backend failed; `retryable` says whether to try again
        └── DeliveryAuthError       the provider refused our credentials (401/403): the run stops at once

A `Problem` is one finding about one place in a file, printed as `path:line:col: message`
(the form editors and CI annotate).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int | None
    col: int | None
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


class LojalError(Exception):
    """Base class of every error Lojal raises on purpose."""


class _ProblemsError(LojalError):
    def __init__(self, problems: list[Problem], summary: str | None = None):
        self.problems = list(problems)
        lines = [str(p) for p in self.problems]
        super().__init__(summary or "\n".join(lines) or "unknown problem")


class ProjectError(_ProblemsError):
    """Marketer or config files are invalid; `problems` lists every finding."""


class DataImportError(_ProblemsError):
    """An import was rejected as a whole; `problems` names file, row and column."""


class StoreError(LojalError):
    """The store is unreachable or not initialised."""


class RenderError(LojalError):
    """Rendering one message failed."""


class HeaderInjectionError(LojalError, ValueError):
    """A header value contained CR, LF or another control character."""


class DeliveryError(LojalError):
    """A delivery backend could not deliver; `retryable` tells whether a later attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class DeliveryAuthError(DeliveryError):
    """The provider answered 401/403: no message can go out until the named setting is fixed."""
