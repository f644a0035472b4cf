"""The `lojal` command line as a user meets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from lojal.cli import app

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("sample-data", "import", "run", "check", "segments", "reco", "preview"):
        assert command in result.output


def test_check_passes_on_the_shipped_project(project):
    result = runner.invoke(app, ["check", "--project", str(project)])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output or "All files are valid." in result.output


def test_check_lists_every_problem_and_fails(project):
    campaigns = project / "config" / "campaigns.yaml"
    campaigns.write_text(campaigns.read_text().replace("segment: win_back_typo", "").replace(
        "segment: lapsed_90_180", "segment: lapsed_90_180_typo"))
    brand = project / "config" / "brand.yaml"
    brand.write_text(brand.read_text().replace("primary_color:", "primary_colour:"))
    result = runner.invoke(app, ["check", "--project", str(project), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    messages = [f"{p['path']}:{p['line']}:{p['col']}: {p['message']}" if p["line"] else f"{p['path']}: {p['message']}"
                for p in report["problems"] if p["severity"] == "error"]
    assert not report["ok"]
    assert any(m.startswith("config/brand.yaml:") and "unknown key 'primary_colour' (did you mean 'primary_color'?)" in m
               for m in messages), messages
    assert any("uses segment 'lapsed_90_180_typo', which no file in segments/ defines" in m for m in messages), messages


def test_sample_data_then_refuse_without_replace(project):
    result = runner.invoke(app, ["sample-data", "--customers", "200", "--seed", "1", "--until", "2026-11-24",
                                 "--project", str(project)])
    assert result.exit_code == 0, result.output
    assert "200 customers" in result.output
    assert (Path(os.environ["LOJAL_HOME"]) / "lojal.db").exists()


def test_check_warns_about_categories_and_skus_the_store_never_had(project):
    segment = project / "segments" / "coffee_lovers.yaml"
    segment.write_text("name: coffee_lovers\ndescription: Bought coffee lately.\nwhere:\n  any:\n"
                       "    - bought: {category: Cofee, within_days: 90}\n    - bought: {sku: cof-0001}\n")
    before = json.loads(runner.invoke(app, ["check", "--project", str(project), "--json"]).stdout)
    assert before["ok"] and not before["problems"]  # no store yet: nothing to compare with, and none created
    assert not (Path(os.environ["LOJAL_HOME"]) / "lojal.db").exists()

    runner.invoke(app, ["sample-data", "--customers", "50", "--until", "2026-11-24", "--project", str(project)])
    result = runner.invoke(app, ["check", "--project", str(project)])
    assert result.exit_code == 0, result.output  # warnings: the catalogue may still grow into them
    lines = [line for line in result.output.splitlines() if "coffee_lovers" in line]
    assert lines == [
        "segments/coffee_lovers.yaml:5:7: warning: no product in the store has category 'Cofee' (did you mean "
        "'Coffee'?); this condition matches nobody until one does",
        "segments/coffee_lovers.yaml:6:7: warning: no product in the store has SKU 'cof-0001' (did you mean "
        "'COF-0001'?); this condition matches nobody until one does"], result.output


def test_bad_date_is_a_usage_error(project):
    result = runner.invoke(app, ["run", "--date", "24.11.2026", "--project", str(project)])
    assert result.exit_code == 2
    assert "use YYYY-MM-DD" in result.output


def test_lojal_errors_print_one_clean_line(tmp_path):
    env = dict(os.environ, LOJAL_HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", "from lojal.cli import main; main()", "import", "orders",
                             str(tmp_path / "missing.csv")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: {tmp_path / 'missing.csv'}: file not found" in " ".join(result.stderr.split())
