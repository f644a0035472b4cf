"""What encoding one Mail Send body costs (16 KB of HTML, 17.7 KB of JSON), per message:
building the dict, json.dumps (ensure_ascii False and True) and orjson, in the same run.

    .venv/bin/python bench/send_encode.py [--messages 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import orjson  # noqa: E402

import lojal.delivery  # noqa: E402,F401 (import order)
from lojal.config import SendGridSettings, Tracking  # noqa: E402
from lojal.sendgrid.payload import mail_send_body  # noqa: E402
from send import messages  # noqa: E402


def per_message_us(function, items) -> float:
    started = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - started) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    prepared, tracking, settings = list(messages(args.messages, 16)), Tracking(), SendGridSettings()
    bodies = [mail_send_body(m, tracking, settings) for m in prepared]
    figures = {
        "mail_send_body (the dict)": per_message_us(lambda m: mail_send_body(m, tracking, settings), prepared),
        "json.dumps(ensure_ascii=False).encode()": per_message_us(
            lambda b: json.dumps(b, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), bodies),
        "json.dumps(ensure_ascii=True).encode()": per_message_us(
            lambda b: json.dumps(b, separators=(",", ":")).encode("ascii"), bodies),
        "orjson.dumps": per_message_us(orjson.dumps, bodies),
    }
    for name, us in figures.items():
        print(f"  {name:42s} {us:8.1f} us per message")
    print(f"  json.dumps(ensure_ascii=False) / orjson: {figures['json.dumps(ensure_ascii=False).encode()'] / figures['orjson.dumps']:.0f}x; "
          f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
