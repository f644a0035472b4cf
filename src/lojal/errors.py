"""Every exception Lojal raises, in one place.

    LojalError                      base of everything below
    ├── ProjectError                marketer/config files are invalid (carries Problems)
    ├── DataImportError             a CSV/Parquet import was rejected (carries Problems, nothing written)
    ├── StoreError                  the database is missing, unreachable or not initialised
    ├── RenderError                 a template failed for one recipient (undefined variable, ...)
    ├── AddressError                not a deliverable e-mail address (lojal.addresses), or one Lojal cannot send to
    ├── HeaderInjectionError        CR/LF or other control characters in a header value
    ├── RunLockedError              another nightly run is using the store; this one stops at once
    ├── ProofError                  `lojal preview --customer` / `send-test`: unknown customer or campaign
    ├── PlanError                   a dry run's plan or a ledger record asked for does not exist
    ├── DeliveryError               a delivery backend failed; `retryable` says whether to try again
    │   ├── DeliveryAuthError       SendGrid answered 401/403: the run stops, naming the setting to fix
    │   └── DeliveryConfigError     the SendGrid backend cannot start (no API key, bad URL)
    └── WebhookError                the SendGrid Event Webhook receiver refused or failed a post
        ├── WebhookSignatureError   missing, forged, tampered or stale signature (`status` 401/403)
        ├── WebhookConfigError      no or invalid verification key configured
        └── WebhookPayloadError     the (verified) body is not a SendGrid event batch (400)
    UnsubscribeTokenError (LojalError, ValueError)  a forged, altered, foreign or malformed unsubscribe token
    TrackingConfigError   (LojalError)              the shop's secret is unusable (too short, unreadable block or secret.key)

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


class AddressError(LojalError, ValueError):
    """Text that is not a deliverable e-mail address (lojal.addresses); the message says why."""


class HeaderInjectionError(LojalError, ValueError):
    """A header value contained CR, LF or another control character."""


class RunLockedError(LojalError):
    """Another nightly run holds the store's run lock; the message names it."""


class ProofError(LojalError):
    """`lojal preview --customer` or `lojal send-test` cannot do what was asked: no such customer
    (with the closest address when one is near), or a campaign that is unknown or disabled."""


class PlanError(LojalError):
    """A dry run's decision log (`lojal plan diff`) or a message (`lojal ledger show`) that is not there."""


class DeliveryError(LojalError):
    """A delivery backend could not deliver; `retryable` tells whether a later attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class DeliveryAuthError(DeliveryError):
    """SendGrid refused the API key (401) or its permissions (403): every further request would fail
    too, so the run stops. `results` holds the outcomes of the batch's other messages (None where
    the request was refused for the key)."""

    def __init__(self, message: str, results: list | None = None):
        super().__init__(message, retryable=False)
        self.results = results or []


class DeliveryConfigError(DeliveryError):
    """The SendGrid backend is not configured: no API key, or an unusable API URL."""


class WebhookError(LojalError):
    """The Event Webhook receiver refused a post; `status` is the HTTP status it answers."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class WebhookSignatureError(WebhookError):
    """Missing (401), forged, tampered or stale (403) signature: nothing in the body is read."""

    status = 403


class WebhookConfigError(WebhookError):
    """No verification key, or one that is not an ECDSA P-256 public key."""

    status = 500


class WebhookPayloadError(WebhookError):
    """A verified body that is not a JSON array of SendGrid events."""


class UnsubscribeTokenError(LojalError, ValueError):
    """An unsubscribe token that is malformed, altered, forged or signed with another shop's secret."""


class TrackingConfigError(LojalError):
    """The shop's secret (lojal.secrets) is unusable: too short, an unreadable Prefect block or secret.key."""
