"""brand.unsubscribe_url defaults to Lojal's endpoint at tracking.public_url; the shop's page stays an option."""

from __future__ import annotations

import re

import pytest

from lojal.config import load_config
from lojal.errors import ProjectError
from lojal.paths import Paths


def _drop_unsubscribe_url(project):
    brand = project / "config" / "brand.yaml"
    brand.write_text(re.sub(r"(?m)^unsubscribe_url:.*\n", "", brand.read_text()))


def test_the_shops_own_page_is_kept(project):
    config = load_config(Paths.resolve(project))
    assert config.unsubscribe_url_template == "https://nordlys.example/unsubscribe/{token}"
    assert config.tracking.attribution_window_days == 5 and config.tracking.attribute_opens is False


def test_without_the_shops_page_links_go_to_the_webhook_app(project):
    _drop_unsubscribe_url(project)
    with (project / "config" / "tracking.yaml").open("a") as f:
        f.write("public_url: https://mail.nordlys.example/\n")
    config = load_config(Paths.resolve(project))
    assert config.unsubscribe_url_template == "https://mail.nordlys.example/unsubscribe/{token}"


def test_neither_is_one_clear_problem(project):
    _drop_unsubscribe_url(project)
    with pytest.raises(ProjectError, match=r"config/brand.yaml: no unsubscribe page: set tracking.public_url"):
        load_config(Paths.resolve(project))
