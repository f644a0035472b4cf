"""What the nightly run puts in each message for tracking: the signed unsubscribe URL (footer and
List-Unsubscribe header, verifying to that message and recipient) and the message id on every
tracked link; the secret read once per night and never shown."""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import parse_qs, urlsplit

from lojal import pipeline
from lojal.paths import Paths
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.secrets import FILE_NAME
from lojal.store import connect
from lojal.tracking.tokens import verify_unsubscribe_token

NIGHT = date(2026, 11, 24)
HREF = re.compile(r'href="([^"]+)"')


def _messages(project, monkeypatch):
    monkeypatch.delenv("LOJAL_SECRET", raising=False)
    paths = Paths.resolve(project)
    write_sample_shop(connect(paths.database_url), generate_shop(300, seed=5, until=NIGHT), replace=False)
    night = pipeline.prepare_night(pipeline.load_project(paths), NIGHT)
    night.plans = pipeline.plan_campaigns(night)
    plan = next(p for p in night.plans if len(p.pending))
    messages, failures = pipeline.build_messages(night, plan.campaign, plan.pending.head(20))
    assert messages and not failures
    return night, messages


def test_the_unsubscribe_url_is_signed_for_the_message_and_links_carry_its_id(project, monkeypatch):
    night, messages = _messages(project, monkeypatch)
    secret = (Paths.resolve(project).state / FILE_NAME).read_text().strip()
    assert night.secrets.current == secret.encode()
    assert secret not in repr(night) and secret not in repr(night.secrets)
    for message in messages:
        url = message.headers["List-Unsubscribe"].strip("<>")
        assert url.startswith("https://nordlys.example/unsubscribe/")  # brand.unsubscribe_url, the shop's page
        signed = verify_unsubscribe_token(url.rsplit("/", 1)[1], night.secrets)
        assert (signed.message_id, signed.email) == (message.message_id, message.to_email)
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        links = [h.replace("&amp;", "&") for h in HREF.findall(message.html)]
        assert url in links  # the footer's link is the header's
        tracked = [h for h in links if "utm_source=" in h]
        assert tracked
        for link in tracked:
            assert parse_qs(urlsplit(link).query)["lojal_mid"] == [message.message_id], link
        assert message.message_id in message.text  # the plain-text part's links carry it too


    # Without the shop's own page, links go to the webhook app's endpoint at tracking.public_url.
    config = night.project.config
    night.project.config = config.model_copy(update={
        "brand": config.brand.model_copy(update={"unsubscribe_url": None}),
        "tracking": config.tracking.model_copy(update={"public_url": "https://mail.nordlys.example"})})
    plan = next(p for p in night.plans if len(p.pending))
    for message in pipeline.build_messages(night, plan.campaign, plan.pending.head(5))[0]:
        url = message.headers["List-Unsubscribe"].strip("<>")
        assert url.startswith("https://mail.nordlys.example/unsubscribe/")
        assert verify_unsubscribe_token(url.rsplit("/", 1)[1], night.secrets).message_id == message.message_id


def test_previews_of_a_shop_on_lojals_own_unsubscribe_page(project):
    """Store-drawn previews work without brand.unsubscribe_url (they used to read it unchecked)."""
    import yaml

    from lojal.config import load_config
    from lojal.render.store_samples import store_samples

    brand = yaml.safe_load((project / "config" / "brand.yaml").read_text())
    brand.pop("unsubscribe_url")
    (project / "config" / "brand.yaml").write_text(yaml.safe_dump(brand, allow_unicode=True))
    tracking = project / "config" / "tracking.yaml"
    tracking.write_text(tracking.read_text() + "\npublic_url: https://mail.nordlys.example\n")
    paths = Paths.resolve(project)
    write_sample_shop(connect(paths.database_url), generate_shop(200, seed=5, until=NIGHT), replace=False)
    samples = store_samples(paths, load_config(paths), NIGHT)
    assert samples
    for sample in samples.values():
        assert sample.context["message"]["unsubscribe_url"].startswith("https://mail.nordlys.example/unsubscribe/")
