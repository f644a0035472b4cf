"""The delivery settings are typed: a wrong value is one clear error naming file and line."""

from __future__ import annotations

from typer.testing import CliRunner

from lojal.cli import app
from lojal.config import check_config
from lojal.paths import Paths


def problems_for(project) -> list[str]:
    _, problems = check_config(Paths.resolve(project))
    return [str(p) for p in problems]


def test_send_within_days_and_delivery_settings_errors_name_file_and_line(project):
    campaigns = project / "config" / "campaigns.yaml"
    text = campaigns.read_text()
    campaigns.write_text(text.replace("send_within_days: 3   #", "send_within_days: -2   #", 1))
    line = 1 + campaigns.read_text().splitlines().index("    send_within_days: -2   # a thank-you is worthless after 3 days")
    sender = project / "config" / "sender.yaml"
    sender.write_text(sender.read_text().replace("backend: outbox", "backend: smtp").replace(
        "pause_error_rate: 0.25", "pause_error_rate: 2"))
    found = problems_for(project)
    assert any(p.startswith(f"config/campaigns.yaml:{line}:") and "send_within_days" in p for p in found), found
    assert any(p.startswith("config/sender.yaml:") and "backend" in p and "sendgrid" in p for p in found), found
    assert any(p.startswith("config/sender.yaml:") and "pause_error_rate" in p for p in found), found


def test_run_delivery_accepts_only_known_backends(project):
    result = CliRunner().invoke(app, ["run", "--project", str(project), "--delivery", "smtp"])
    assert result.exit_code == 2
    assert "'smtp' is not a delivery backend; use one of outbox, sendgrid" in result.output
