"""The message id on every tracked link: `lojal_mid=<message id>` next to the UTM tags.

`with_message_id` appends it to an already tracked URL with plain string work, so the render's
cache of UTM-tagged URLs (shared by thousands of recipients) keeps working: only this last step
is per message. A shop that stores the parameter with the order (e.g. in the checkout's landing
URL) lets `lojal.tracking.attribution` tie the order to the exact e-mail.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, quote, urlsplit

PARAM = "lojal_mid"
_SAFE_ID = re.compile(r"[A-Za-z0-9_.~-]+")  # what quote() leaves as it is


def with_message_id(url: str, message_id: str) -> str:
    """`url` with `lojal_mid=<message_id>` added to its query (before any #fragment); unchanged when
    the URL is not http(s) (mailto:, tel:) or already carries the parameter."""
    if not message_id:
        return url
    split = _split_for_id(url)
    if split is None:
        return url
    head, tail = split
    return f"{head}{message_id if _SAFE_ID.fullmatch(message_id) else quote(message_id, safe='')}{tail}"


@lru_cache(maxsize=65536)
def _split_for_id(url: str) -> tuple[str, str] | None:
    """What goes before and after the message id in `url` (None: leave the URL as it is). Cached:
    the same tracked links recur in every message of a campaign, only the id differs."""
    if not url.startswith(("https://", "http://")):
        return None
    base, hash_mark, fragment = url.partition("#")
    if any(key == PARAM for key, _ in parse_qsl(urlsplit(base).query, keep_blank_values=True)):
        return None
    joiner = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    return f"{base}{joiner}{PARAM}=", f"{hash_mark}{fragment}"


def message_id_of(url: str) -> str | None:
    """The message id a landing URL carries, if any (for shops that record it with the order)."""
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == PARAM and value:
            return value
    return None
