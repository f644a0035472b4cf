"""The one e-mail address rule: how Lojal reads, compares, stores and sends an address.

Every place that touches an address goes through here: the customer import, the suppression
list (stored and compared), the audience gate and the message builder.

- **Normalized form** (`Address.email`, what the store keeps and headers carry): surrounding
  space stripped, Unicode NFC, the domain lower-cased and in its ASCII (IDNA/punycode) form, the
  local part as the customer wrote it. `Åse@Bücher.example` becomes `Åse@xn--bcher-kva.example`.
- **Mailbox key** (`Address.key`): the normalized form lower-cased. Two addresses with the same
  key are the same mailbox: `Ase@Example.com` and `ase@example.com` are one person's inbox.
  Suppressions are stored and compared by this key.
- **Internationalised addresses.** A domain in any script is fine: it is sent in its ASCII form.
  A local part (before the @) with non-ASCII characters needs the SMTPUTF8 extension end to end;
  Lojal does not send such mail. The import accepts the address (it is a valid address), and the
  audience gate excludes the customer with the reason `NEEDS_SMTPUTF8`, so nothing later sees it.
- Deliverability is checked by syntax only (RFC 5321/5322 dot-atom, label and length limits,
  through `email-validator`), never by DNS during a run.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from lojal.errors import AddressError

# A plain ASCII dot-atom address in normalized shape: checked without the full validator (the
# common case, 100k addresses a night). Anything else takes the full path.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[a-z](?:[a-z0-9-]{{0,61}}[a-z0-9])?$")
MAX_LENGTH = 254
MAX_LOCAL = 64


@dataclass(frozen=True)
class Address:
    email: str  # normalized form (ASCII domain)
    key: str  # mailbox key: the normalized form lower-cased
    smtputf8: bool  # the local part is not ASCII: sending needs SMTPUTF8

    @property
    def sendable(self) -> bool:
        return not self.smtputf8


@lru_cache(maxsize=262144)
def parse(raw: str) -> Address:
    """The normalized address; AddressError (with the reason) when it is not a valid address."""
    if not isinstance(raw, str):
        raise AddressError(f"expected text, got {type(raw).__name__}")
    text = unicodedata.normalize("NFC", raw.strip())
    if not text:
        raise AddressError("the address is empty")
    if len(text) <= MAX_LENGTH and text.isascii():
        local, _, domain = text.rpartition("@")
        domain = domain.lower()
        if len(local) <= MAX_LOCAL and _PLAIN.match(f"{local}@{domain}") and not domain.split(".")[-1].isdigit():
            email = f"{local}@{domain}"
            return Address(email, email.lower(), False)
    try:
        found = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None
    local = unicodedata.normalize("NFC", found.local_part)
    email = f"{local}@{found.ascii_domain.lower()}"
    return Address(email, email.lower(), not local.isascii())


def normalize(raw: str) -> str:
    """The normalized form of a valid address (AddressError otherwise)."""
    return parse(raw).email


def mailbox_key(raw: object) -> str | None:
    """The mailbox key of an address, or None when it is not a valid address."""
    try:
        return parse(raw).key  # type: ignore[arg-type]
    except AddressError:
        return None


def suppression_key(raw: str) -> str:
    """How a suppression is stored and compared: the mailbox key where the text is an address,
    else the stripped, NFC, lower-cased text (so an odd entry still matches itself)."""
    key = mailbox_key(raw)
    return key if key is not None else unicodedata.normalize("NFC", str(raw).strip()).lower()


def sendable(raw: str) -> Address:
    """The address a message may be sent to: valid and ASCII before the @ (AddressError otherwise)."""
    address = parse(raw)
    if address.smtputf8:
        raise AddressError(f"'{address.email}' has non-ASCII characters before the @, which needs SMTPUTF8; "
                           "Lojal does not send such mail")
    return address
