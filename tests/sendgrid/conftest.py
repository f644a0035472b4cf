"""Helpers for the SendGrid tests: messages and the official Mail Send schema from ../shared."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lojal.delivery.message import OutgoingMessage

SHARED = Path(__file__).resolve().parents[3] / "shared"


def make_message(i: int = 1, **changes) -> OutgoingMessage:
    fields = dict(message_id=f"m{i:05d}", campaign_id="win_back", customer_id=i, to_email=f"kari{i}@example.no",
                  to_name="Kari Østby", from_email="hei@nordlys.example", from_name="Nordlys Hjem",
                  subject="Vi savner deg", html="<p>Hei Kari</p>", text="Hei Kari",
                  categories=("lojal", "lojal-win_back"),
                  custom_args={"lojal_message_id": f"m{i:05d}", "lojal_campaign": "win_back"},
                  headers={"List-Unsubscribe": "<https://shop.example/u/t>",
                           "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    fields.update(changes)
    return OutgoingMessage(**fields)


@pytest.fixture
def mail_send_validator():
    """A validator for SendGrid's published Mail Send request schema (with its custom_args quirk)."""
    from jsonschema import Draft202012Validator

    spec_file = SHARED / "sendgrid-oai" / "tsg_mail_v3.json"
    if not spec_file.exists():
        pytest.skip(f"{spec_file} not present (it ships in ../shared beside the project, not in a clone)")
    spec = json.loads(spec_file.read_text())
    schema = copy.deepcopy(spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"])
    # Known quirk of the published file: message-level custom_args is an object of strings in the live API.
    schema["properties"]["custom_args"] = {"type": "object", "additionalProperties": {"type": "string"}}
    schema["components"] = spec["components"]
    return Draft202012Validator(_resolve_refs(schema, schema))


def _resolve_refs(node, root):
    if isinstance(node, dict):
        if "$ref" in node and node["$ref"].startswith("#/components/"):
            target = root
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            return _resolve_refs(target, root)
        return {k: _resolve_refs(v, root) for k, v in node.items() if k != "components"}
    if isinstance(node, list):
        return [_resolve_refs(v, root) for v in node]
    return node


@pytest.fixture
def message():
    """make_message(i, **changes): an OutgoingMessage like the pipeline builds."""
    return make_message


class ServedApp:
    """An ASGI app on uvicorn in a thread, on a free port: `with ServedApp(app) as served: served.url`."""

    def __init__(self, app):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    access_log=False, lifespan="on"))

    def __enter__(self):
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def served():
    return ServedApp
