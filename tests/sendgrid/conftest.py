"""Helpers for the SendGrid tests: messages and the official Mail Send schema from ../shared."""

from __future__ import annotations


import pytest

from lojal.delivery.message import OutgoingMessage



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
