"""`SendGridBackend`: the DeliveryBackend that posts to SendGrid's v3 Mail Send API.

The API key comes from the environment variable named by `delivery.sendgrid.api_key_env`
(SENDGRID_API_KEY) or from the Prefect Secret block `delivery.sendgrid.api_key_secret_block`;
`LOJAL_SENDGRID_URL` points it at another host (the local SendGrid). The key lives only in the
HTTP client's Authorization header: no repr, log line, error or result carries it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import httpx
import orjson

from lojal.config import SendGridSettings, Tracking
from lojal.delivery.base import DeliveryResult
from lojal.delivery.message import OutgoingMessage
from lojal.errors import DeliveryAuthError, DeliveryConfigError
from lojal.sendgrid.payload import mail_send_body
from lojal.sendgrid.transport import Transport

URL_ENV = "LOJAL_SENDGRID_URL"
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{8,512}$")  # printable ASCII, no spaces: fits an HTTP header


def resolve_api_key(settings: SendGridSettings) -> str:
    """The API key from the Prefect Secret block (when configured) or the environment."""
    if settings.api_key_secret_block:
        key = _secret_block(settings.api_key_secret_block)
        where = f"the Prefect Secret block {settings.api_key_secret_block!r}"
    else:
        key = os.environ.get(settings.api_key_env, "")
        where = f"the environment variable {settings.api_key_env}"
    key = key.strip()
    if not key:
        raise DeliveryConfigError(
            f"no SendGrid API key: set {where} (sender.yaml delivery.sendgrid.api_key_env or "
            "api_key_secret_block says where it is read from)")
    if not _KEY_SHAPE.match(key):
        raise DeliveryConfigError(f"the SendGrid API key in {where} is malformed (spaces, line breaks or "
                                  "non-ASCII characters); paste the key again")
    return key


def _secret_block(name: str) -> str:
    try:
        from prefect.blocks.system import Secret

        return str(Secret.load(name).get())
    except Exception as exc:  # missing block, unreachable Prefect API
        raise DeliveryConfigError(f"cannot read the Prefect Secret block {name!r} "
                                  f"({type(exc).__name__}); create it or set api_key_env instead") from None


def api_base_url(settings: SendGridSettings) -> str:
    url = os.environ.get(URL_ENV) or str(settings.base_url)
    if not url.startswith(("http://", "https://")):
        raise DeliveryConfigError(f"{URL_ENV if os.environ.get(URL_ENV) else 'delivery.sendgrid.base_url'} "
                                  f"must be an http(s) URL, not {url!r}")
    return url


class SendGridBackend:
    name = "sendgrid"

    def __init__(self, settings: SendGridSettings, tracking: Tracking, *, api_key: str | None = None,
                 base_url: str | None = None, transport: httpx.AsyncBaseTransport | None = None, **transport_options):
        self.settings = settings
        self.tracking = tracking
        self.concurrency = settings.concurrency
        self._setting_hint = (f"the Prefect Secret block {settings.api_key_secret_block!r}"
                              if settings.api_key_secret_block else settings.api_key_env)
        key = api_key if api_key is not None else resolve_api_key(settings)
        if api_key is not None and not _KEY_SHAPE.match(api_key):
            raise DeliveryConfigError("the SendGrid API key is malformed (spaces, line breaks or non-ASCII)")
        self.base_url = base_url or api_base_url(settings)
        self._transport = Transport(
            self.base_url, key, concurrency=settings.concurrency, connect_timeout=settings.connect_timeout_seconds,
            timeout=settings.timeout_seconds, connect_retries=settings.connect_retries,
            max_rate_wait=settings.max_rate_wait_seconds, transport=transport, **transport_options)

    def __repr__(self) -> str:
        return f"SendGridBackend({self.base_url}, concurrency={self.concurrency})"

    def body(self, message: OutgoingMessage) -> bytes:
        # orjson: compact UTF-8 JSON in ~5 us for a 17.7 KB body against 110-250 us for
        # json.dumps(ensure_ascii=False), up to half of the client's CPU per message (bench/send_encode.py)
        return orjson.dumps(mail_send_body(message, self.tracking, self.settings))

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        answers = self._transport.post_many([self.body(m) for m in messages])
        results = [None if a.auth_refused else DeliveryResult(m.message_id, a.outcome, a.provider_id, a.error,
                                                               a.accepted_at)
                   for m, a in zip(messages, answers)]
        refused = next((a for a in answers if a.auth_refused), None)
        if refused:
            what = "refused the API key" if refused.status == 401 else "refused the API key's permissions"
            raise DeliveryAuthError(
                f"SendGrid {what} ({refused.error}): fix {self._setting_hint} (a key with Mail Send "
                f"permission; sender.yaml delivery.sendgrid); nothing more is sent this run", results)
        return results

    def finish(self) -> None:
        self._transport.close()
