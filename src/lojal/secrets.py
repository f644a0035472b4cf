"""The shop's one secret: where it comes from, one rule for all its uses.

It keys everything a stranger must not be able to compute:

- unsubscribe tokens (`lojal.tracking.tokens`): without it nobody can unsubscribe someone else;
- holdout groups and A/B arms (`lojal.decisions`): who is held out or gets which variant is fixed
  per customer by it, the same every night, and cannot be guessed;
- personal offer codes.

Where it is read, first found wins:

1. `LOJAL_SECRET` in the environment;
2. the Prefect Secret block named by `tracking.secret_block` in config/tracking.yaml;
3. `<state>/secret.key`: generated on first use (64 random characters), created atomically with
   mode 0600, so `make demo` and a new shop work without any setup. Back it up with the store.

`LOJAL_SECRET_PREVIOUS` (comma separated) lists earlier secrets still accepted when *verifying*
tokens during a rotation; new tokens and tonight's assignments always use the current one.
Every secret is at least 32 characters. No value is ever logged, printed or put in an error
message; `Secrets` hides them in its repr.
"""

from __future__ import annotations

import base64
import os
import stat
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lojal.errors import TrackingConfigError

SECRET_ENV = "LOJAL_SECRET"
PREVIOUS_SECRET_ENV = "LOJAL_SECRET_PREVIOUS"
MIN_SECRET_LENGTH = 32
FILE_NAME = "secret.key"
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


@dataclass(frozen=True)
class Secrets:
    """The current secret and any previous ones still accepted for verification; `source` says
    where the current one came from (never its value)."""

    current: bytes = field(repr=False)
    previous: tuple[bytes, ...] = field(default=(), repr=False)
    source: str = "given"

    def __post_init__(self):
        for secret in (self.current, *self.previous):
            if len(secret) < MIN_SECRET_LENGTH:
                raise TrackingConfigError(f"the shop's secret must be at least {MIN_SECRET_LENGTH} characters; "
                                          f"generate one with: {GENERATE_HINT}")

    def __repr__(self) -> str:
        return f"Secrets(<{1 + len(self.previous)} hidden>, source={self.source!r})"

    __str__ = __repr__


def secret_file(paths) -> Path:
    """`<state>/secret.key`, the generated secret of a store without LOJAL_SECRET or a block."""
    return Path(paths.state) / FILE_NAME


def load_secrets(paths, config=None, environ: Mapping[str, str] | None = None,
                 block_loader: Callable[[str], str] | None = None) -> Secrets:
    """The shop's secrets: `LOJAL_SECRET`, else the Prefect Secret block `config.tracking.secret_block`,
    else `<state>/secret.key` (created on first use); `LOJAL_SECRET_PREVIOUS` for rotation.
    `block_loader` reads a block by name (default: Prefect's `Secret.load(name).get()`)."""
    environ = os.environ if environ is None else environ
    previous = _previous(environ)
    value = environ.get(SECRET_ENV)
    if value:
        return _checked(value, previous, f"the environment variable {SECRET_ENV}")
    block = getattr(getattr(config, "tracking", None), "secret_block", None)
    if block:
        where = f"the Prefect Secret block {block!r} (tracking.secret_block)"
        return _checked(_read_block(block, block_loader), previous, where)
    path = secret_file(paths)
    return _checked(_file_secret(path), previous, str(path))


def shop_secret_bytes(paths, config=None, environ: Mapping[str, str] | None = None) -> bytes:
    """The current secret as bytes: the key of holdouts, A/B arms and offer codes (lojal.decisions)."""
    return load_secrets(paths, config, environ).current


def _previous(environ: Mapping[str, str]) -> tuple[bytes, ...]:
    values = [s.strip() for s in (environ.get(PREVIOUS_SECRET_ENV) or "").split(",") if s.strip()]
    for value in values:
        if len(value) < MIN_SECRET_LENGTH:
            raise TrackingConfigError(f"every secret in {PREVIOUS_SECRET_ENV} must be at least {MIN_SECRET_LENGTH} "
                                      "characters (it lists the earlier LOJAL_SECRET values, comma separated)")
    return tuple(v.encode() for v in values)


def _checked(value: str, previous: tuple[bytes, ...], where: str) -> Secrets:
    value = str(value).strip()
    if len(value) < MIN_SECRET_LENGTH:
        raise TrackingConfigError(f"the shop's secret in {where} is shorter than {MIN_SECRET_LENGTH} characters; "
                                  f"set a long random value, e.g. the output of: {GENERATE_HINT}")
    return Secrets(value.encode(), previous, where)


def _read_block(name: str, block_loader: Callable[[str], str] | None) -> str:
    if block_loader is None:
        from prefect.blocks.system import Secret

        def block_loader(block: str) -> str:
            return Secret.load(block, _sync=True).get()  # never a coroutine, whatever loop is running
    try:
        value = block_loader(name)
        if not isinstance(value, str):
            raise TypeError("the block does not hold text")
    except Exception as exc:  # missing block, unreachable Prefect API: never echo anything it held
        raise TrackingConfigError(f"could not read the Prefect Secret block {name!r} named by tracking.secret_block "
                                  f"({type(exc).__name__}); create it (prefect block create secret) or set "
                                  f"{SECRET_ENV}") from None
    return str(value or "")


def _file_secret(path: Path) -> str:
    if not path.exists():
        _create(path)
    return _read_file(path)


def _read_file(path: Path) -> str:
    if os.name == "posix":
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TrackingConfigError(f"{path} can be read by other users; restrict it with: chmod 600 {path}")
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < MIN_SECRET_LENGTH:
        raise TrackingConfigError(f"{path} does not hold a secret of at least {MIN_SECRET_LENGTH} characters; "
                                  f"restore it from your backup (holdouts, A/B arms and unsubscribe links depend "
                                  f"on it) or set {SECRET_ENV}")
    return value


def _create(path: Path) -> None:
    """Write a new random secret to `path` atomically and with mode 0600: a temporary file is
    written and synced, then hard-linked into place, which never replaces a file another process
    created first (both then read that one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, (_new_secret() + "\n").encode("ascii"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # a concurrent first use won: its secret is the store's
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise TrackingConfigError(f"could not create the shop's secret at {path} ({exc.strerror or exc}); make the "
                                  f"state folder writable or set {SECRET_ENV}") from None


def _new_secret() -> str:
    return base64.urlsafe_b64encode(os.urandom(48)).decode("ascii")
