"""Other platforms' merge tags in a template brought to Lojal, with the Lojal variable to use instead.

Mailchimp's `*|FNAME|*` would be sent as written; Klaviyo's `{{ person.first_name }}`, SendGrid's or
Mailjet's `{{FirstName}}` and HubSpot's `{{ contact.firstname }}` are Jinja-shaped but name variables
Lojal does not have, and Salesforce's `%%FirstName%%` is plain text again. `foreign_merge_tags` finds
them line by line and says what to write: `did you mean {{ customer.first_name }}?`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Lojal's template variables (see docs/templates.md): the roots a template may use.
LOJAL_ROOTS = {"customer", "recommendations", "last_order", "campaign", "message", "brand", "locale", "t",
               "rec", "item", "loop", "range"}
FOREIGN_ROOTS = {"person": "Klaviyo", "organization": "Klaviyo", "contact": "HubSpot", "subscriber": "other",
                 "recipient": "other", "user": "other", "data": "other", "var": "Mailjet", "profile": "other"}

# What the foreign name means (lower case, without _ - . and spaces) -> Lojal's expression.
MEANINGS = {
    "fname": "customer.first_name", "firstname": "customer.first_name", "first": "customer.first_name",
    "name": "customer.first_name", "givenname": "customer.first_name",
    "email": "customer.email", "emailaddress": "customer.email",
    "unsub": "message.unsubscribe_url", "unsubscribe": "message.unsubscribe_url",
    "unsubscribelink": "message.unsubscribe_url", "unsubscribeurl": "message.unsubscribe_url",
    "asmgroupunsubscriberawurl": "message.unsubscribe_url", "unsubscribeproductlink": "message.unsubscribe_url",
    "listaddress": "brand.postal_address", "listaddressline": "brand.postal_address",
    "address": "brand.postal_address", "fulladdress": "brand.postal_address", "companyaddress": "brand.postal_address",
    "company": "brand.name", "listcompany": "brand.name", "organizationname": "brand.name", "companyname": "brand.name",
    "website": "brand.website_url", "url": "brand.website_url", "listurl": "brand.website_url",
    "country": "customer.country", "language": "customer.locale",
    "subject": "t.subject", "mcsubject": "t.subject", "mcpreviewtext": "t.preheader", "previewtext": "t.preheader",
    "currentyear": "message.run_date.year", "date": "message.run_date | date",
}
_PLATFORM_TAGS = (
    ("Mailchimp", re.compile(r"\*\|([A-Za-z0-9_:]+)\|\*")),
    ("Salesforce Marketing Cloud", re.compile(r"%%=?\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*=?%%")),
    ("SendGrid", re.compile(r"<%\s*([A-Za-z_][A-Za-z0-9_]*)\s*%>")),
    ("Mailgun", re.compile(r"%recipient\.([A-Za-z_][A-Za-z0-9_]*)%")),
)
_JINJA_EXPRESSION = re.compile(r"\{\{\{?\s*([A-Za-z_][A-Za-z0-9_]*(?:[.:][A-Za-z_][A-Za-z0-9_]*)*)\s*(?:\|[^}]*)?\}?\}\}")
_JINJA_TAG = re.compile(r"\{%-?\s*(unsubscribe\w*|manage_preferences\w*|web_view\w*)\b[^%]*%\}")


@dataclass(frozen=True)
class ForeignTag:
    line: int
    col: int
    text: str
    message: str


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _suggestion(name: str) -> str | None:
    key = _key(name)
    return MEANINGS.get(key) or MEANINGS.get(key.removeprefix("list").removeprefix("mc"))


def _say(text: str, platform: str, lojal: str | None, sent_as_written: bool) -> str:
    who = "another platform's merge tag" if platform == "other" else f"a {platform} merge tag"
    what = (f"'{text}' is {who}, which Lojal would send as written"
            if sent_as_written else f"'{text}' is {who}; Lojal has no such variable")
    if lojal:
        return f"{what}: did you mean {{{{ {lojal} }}}}?"
    return f"{what}: use one of Lojal's variables (customer.first_name, customer.email, brand.name, ...; see docs/templates.md)"


def foreign_merge_tags(text: str, first_line: int = 1) -> list[ForeignTag]:
    """Every foreign merge tag in `text`, with its line (counted from `first_line`) and column."""
    found: list[ForeignTag] = []
    for number, line in enumerate(text.split("\n"), start=first_line):
        for platform, pattern in _PLATFORM_TAGS:
            for match in pattern.finditer(line):
                found.append(ForeignTag(number, match.start() + 1, match.group(0),
                                        _say(match.group(0), platform, _suggestion(match.group(1)), True)))
        for match in _JINJA_EXPRESSION.finditer(line):
            path = re.split(r"[.:]", match.group(1))
            root = path[0]
            if root in LOJAL_ROOTS:
                continue
            if root in FOREIGN_ROOTS and len(path) > 1:
                platform = FOREIGN_ROOTS[root]
                lojal = _suggestion("".join(path)) or _suggestion("".join(path[1:])) or _suggestion(path[-1])
            elif len(path) == 1 and _suggestion(root):
                platform, lojal = "other", _suggestion(root)
            else:
                continue
            found.append(ForeignTag(number, match.start() + 1, match.group(0), _say(match.group(0), platform, lojal, False)))
        for match in _JINJA_TAG.finditer(line):
            found.append(ForeignTag(number, match.start() + 1, match.group(0),
                                    _say(match.group(0), "Klaviyo", _suggestion(match.group(1)) or "message.unsubscribe_url",
                                         False)))
    return sorted(found, key=lambda tag: (tag.line, tag.col))
