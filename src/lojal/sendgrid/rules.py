"""What SendGrid's v3 Mail Send refuses, as a pure function: the strict local SendGrid answers
400 with these errors (SendGrid's `{"errors": [{"message", "field", "help"}]}` shape).

The limits are SendGrid's published ones: 1-1000 personalizations, at most 1000 recipients in a
request, no address twice in one personalization (to/cc/bcc), at most 10 categories of at most
255 characters, `custom_args` of strings within 10,000 bytes, `send_at` at most 72 hours ahead,
no reserved headers, `reply_to` and `reply_to_list` not together, `text/plain` before
`text/html`, no empty content value.
"""

from __future__ import annotations

import json
import re

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SEND_AT_AHEAD_SECONDS = 72 * 3600
MAX_BODY_BYTES = 30 * 1024 * 1024
RESERVED_HEADERS = frozenset({"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                              "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"})
_EMAIL = re.compile(r"^[^@\s<>\"(),;:\\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


def error_body(*errors: tuple[str, str | None]) -> dict:
    return {"errors": [{"message": message, "field": field, "help": None} for message, field in errors]}


class _Errors(list):
    def add(self, message: str, field: str | None) -> None:
        self.append((message, field))


def validate_mail_send(body: object, now: float) -> list[tuple[str, str | None]]:
    """Every reason SendGrid would answer 400 to this Mail Send body (message, field); [] if none."""
    errors = _Errors()
    if not isinstance(body, dict):
        errors.add("Bad Request: the request body must be a JSON object", None)
        return errors
    _personalizations(body, now, errors)
    _sender(body, errors)
    _content(body, errors)
    _categories(body.get("categories"), errors)
    _headers(body.get("headers"), "headers", errors)
    _send_at(body.get("send_at"), "send_at", now, errors)
    if "reply_to" in body and "reply_to_list" in body:
        errors.add("The reply_to and reply_to_list fields cannot be used together; use one of them.", "reply_to_list")
    return errors


def _personalizations(body: dict, now: float, errors: _Errors) -> None:
    items = body.get("personalizations")
    if not isinstance(items, list) or not items:
        errors.add("The personalizations field is required and must have at least one personalization.",
                   "personalizations")
        return
    if len(items) > MAX_PERSONALIZATIONS:
        errors.add(f"The personalizations field must have at most {MAX_PERSONALIZATIONS} items.", "personalizations")
    total = 0
    message_args = body.get("custom_args") if isinstance(body.get("custom_args"), dict) else {}
    for i, item in enumerate(items[:MAX_PERSONALIZATIONS]):
        where = f"personalizations.{i}"
        if not isinstance(item, dict):
            errors.add("Each personalization must be an object.", where)
            continue
        if not isinstance(item.get("to"), list) or not item["to"]:
            errors.add("The to array is required for all personalization objects, and must have at least one "
                       "email object with a valid email address.", f"{where}.to")
        total += _recipients(item, where, errors)
        _headers(item.get("headers"), f"{where}.headers", errors)
        _send_at(item.get("send_at"), f"{where}.send_at", now, errors)
        args = item.get("custom_args", {})
        _custom_args({**message_args, **args} if isinstance(args, dict) else args, f"{where}.custom_args", errors)
    if total > MAX_RECIPIENTS:
        errors.add(f"The total number of recipients must be no more than {MAX_RECIPIENTS}.", "personalizations")
    if not isinstance(body.get("custom_args", {}), dict):
        errors.add("The custom_args field must be an object of string values.", "custom_args")


def _recipients(item: dict, where: str, errors: _Errors) -> int:
    seen: set[str] = set()
    count = 0
    for kind in ("to", "cc", "bcc"):
        addresses = item.get(kind) or []
        if not isinstance(addresses, list):
            errors.add(f"The {kind} field must be an array of email objects.", f"{where}.{kind}")
            continue
        for j, address in enumerate(addresses):
            count += 1
            email = address.get("email") if isinstance(address, dict) else None
            if not isinstance(email, str) or not _EMAIL.match(email):
                errors.add("Does not contain a valid address.", f"{where}.{kind}.{j}.email")
            elif email.lower() in seen:
                errors.add("Each email address in the personalization block should be unique between to, cc, and "
                           f"bcc. We found the first duplicate instance of [{email}] in the {where}.{kind} field.",
                           f"{where}.{kind}")
            else:
                seen.add(email.lower())
    return count


def _sender(body: dict, errors: _Errors) -> None:
    sender = body.get("from")
    if not isinstance(sender, dict) or not isinstance(sender.get("email"), str):
        errors.add("The from object must be provided for every email send. It is an object that requires the "
                   "email parameter, but may also contain a name parameter.", "from")
    elif not _EMAIL.match(sender["email"]):
        errors.add("The from email does not contain a valid address.", "from.email")
    has_subject = isinstance(body.get("subject"), str) and body["subject"] != ""
    personal = body.get("personalizations") if isinstance(body.get("personalizations"), list) else []
    if not has_subject and not body.get("template_id") and not (
            personal and all(isinstance(p, dict) and p.get("subject") for p in personal)):
        errors.add("The subject is required. You can get around this requirement if you use a template with a "
                   "subject defined or if every personalization has a subject defined.", "subject")


def _content(body: dict, errors: _Errors) -> None:
    content = body.get("content")
    if content is None and body.get("template_id"):
        return
    if not isinstance(content, list) or not content:
        errors.add("Unless a valid template_id is provided, the content parameter is required. There must be at "
                   "least one defined content block.", "content")
        return
    types = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            errors.add("Each content block must be an object with a type and a value.", f"content.{i}")
            continue
        types.append(part["type"])
        if not isinstance(part.get("value"), str) or part["value"] == "":
            errors.add("The content value must be a string at least one character in length.", f"content.{i}.value")
    if "text/plain" in types and types.index("text/plain") != 0:
        errors.add("If present, text/plain must be first, followed by text/html, followed by any other content.",
                   "content")
    if "text/html" in types and types.index("text/html") > (1 if "text/plain" in types else 0):
        errors.add("If present, text/plain must be first, followed by text/html, followed by any other content.",
                   "content")


def _categories(categories: object, errors: _Errors) -> None:
    if categories is None:
        return
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        errors.add("The categories field must be an array of strings.", "categories")
        return
    if len(categories) > MAX_CATEGORIES:
        errors.add(f"Too many categories: at most {MAX_CATEGORIES} are allowed per message.", "categories")
    if any(len(c) > MAX_CATEGORY_LENGTH for c in categories):
        errors.add(f"A category cannot be longer than {MAX_CATEGORY_LENGTH} characters.", "categories")
    if len(set(categories)) != len(categories):
        errors.add("Categories must be unique.", "categories")


def _headers(headers: object, field: str, errors: _Errors) -> None:
    if headers is None:
        return
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        errors.add("The headers field must be an object of string values.", field)
        return
    for name in headers:
        if name.lower() in RESERVED_HEADERS:
            errors.add(f"The '{name}' header is a reserved header and cannot be set in the headers object.", field)


def _custom_args(args: object, field: str, errors: _Errors) -> None:
    if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
        errors.add("The custom_args values must all be strings.", field)
        return
    if len(json.dumps(args, ensure_ascii=False).encode("utf-8")) > MAX_CUSTOM_ARGS_BYTES:
        errors.add(f"The custom_args of a personalization, with the message's, must total less than "
                   f"{MAX_CUSTOM_ARGS_BYTES} bytes.", field)


def _send_at(send_at: object, field: str, now: float, errors: _Errors) -> None:
    if send_at is None:
        return
    if not isinstance(send_at, int) or isinstance(send_at, bool):
        errors.add("The send_at parameter must be a Unix timestamp (integer seconds).", field)
    elif send_at > now + MAX_SEND_AT_AHEAD_SECONDS:
        errors.add("The send_at parameter cannot be scheduled more than 72 hours in advance.", field)
