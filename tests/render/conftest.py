"""Shared fixtures: the shipped templates compiled once per session (each MJML compile costs
~50 ms with the Python port), and throw-away project copies for tests that break files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lojal.config import ProjectConfig, load_config
from lojal.paths import Paths
from lojal.render import TemplateSet, load_templates

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def shipped_paths() -> Paths:
    return Paths(project=REPO, state=REPO / "var")


@pytest.fixture(scope="session")
def shipped_config(shipped_paths: Paths) -> ProjectConfig:
    return load_config(shipped_paths)


@pytest.fixture(scope="session")
def shipped(shipped_paths: Paths, shipped_config: ProjectConfig) -> TemplateSet:
    return load_templates(shipped_paths, shipped_config)


@pytest.fixture
def project(tmp_path: Path) -> Paths:
    """A copy of the shipped config/ and templates/ that a test may break."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return Paths(project=tmp_path, state=tmp_path / "var")


def only_campaign(config: ProjectConfig, campaign_id: str) -> ProjectConfig:
    """`config` with every campaign but one disabled, so a test compiles one template (4 locales)."""
    campaigns = [c.model_copy(update={"enabled": c.id == campaign_id}) for c in config.campaigns.campaigns]
    return config.model_copy(update={"campaigns": config.campaigns.model_copy(update={"campaigns": campaigns})})


@pytest.fixture
def one_campaign():
    return only_campaign
