"""`lojal reco evaluate` through Typer's CliRunner, on small generated CSV and Parquet files."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lojal.reco.cli import app

runner = CliRunner()
COLUMNS = "customer=cust,product=item,time=when,quantity=qty,price=unit,order=invoice"
METRIC_KEYS = {"recall", "ndcg", "hit_rate", "coverage", "recall_repeat", "recall_new"}


def orders_frame() -> pd.DataFrame:
    """Twenty customers who each re-buy their own product after the cutoff; plus rows to drop."""
    rows = []
    for c in range(1, 21):
        rows.append({"invoice": f"{c}01", "cust": c, "item": f"P{c}", "when": "2024-01-10 10:00", "qty": 1, "unit": 5.0})
        rows.append({"invoice": f"{c}02", "cust": c, "item": f"P{c}", "when": "2024-02-10 10:00", "qty": 2, "unit": 5.0})
    rows.append({"invoice": "C999", "cust": 1, "item": "P2", "when": "2024-01-05", "qty": 1, "unit": 5.0})
    rows.append({"invoice": "998", "cust": 1, "item": "P3", "when": "2024-01-05", "qty": 0, "unit": 5.0})
    rows.append({"invoice": "997", "cust": 1, "item": "P4", "when": "2024-01-05", "qty": 1, "unit": 0.0})
    return pd.DataFrame(rows)


def run(path: Path, *extra: str):
    return runner.invoke(app, ["evaluate", "--orders", str(path), "--cutoff", "2024-02-01", "--horizon-days", "30",
                               "--k", "10", "--columns", COLUMNS, *extra])


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    orders_frame().to_csv(path, index=False)
    return path


def test_json_output_on_csv(csv_file):
    result = run(csv_file, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["customers"] == 20
    assert payload["rows"]["cancelled"] == 1
    assert payload["rows"]["non_positive_quantity"] == 1
    assert payload["rows"]["non_positive_price"] == 1
    assert payload["rows"]["rows_kept"] == 40
    assert {"repeat", "ease", "popular", "repeat>ease"} <= set(payload["results"])
    assert all(set(m) == METRIC_KEYS for m in payload["results"].values())
    # everyone re-buys exactly their own single product: repeat ranks it first
    assert payload["results"]["repeat"]["recall"] == 1.0
    assert payload["results"]["repeat"]["ndcg"] == 1.0
    assert payload["results"]["repeat"]["recall_repeat"] == 1.0
    # nobody bought anything new, and each customer's only product is excluded from discovery
    assert payload["results"]["ease"]["recall"] == 0.0


def test_parquet_gives_the_same_results_as_csv(csv_file, tmp_path):
    parquet = tmp_path / "orders.parquet"
    frame = orders_frame()
    frame["when"] = pd.to_datetime(frame["when"], format="mixed")
    frame.to_parquet(parquet)
    from_csv = json.loads(run(csv_file, "--json").stdout)["results"]
    result = run(parquet, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"] == from_csv


def test_table_output(csv_file):
    result = run(csv_file)
    assert result.exit_code == 0, result.output
    assert "repeat>ease" in result.stdout and "NDCG@10" in result.stdout


def test_missing_column_is_named_with_the_fix(csv_file):
    result = runner.invoke(app, ["evaluate", "--orders", str(csv_file), "--cutoff", "2024-02-01",
                                 "--columns", "customer=CustomerID"])
    assert result.exit_code == 2
    assert "CustomerID" in result.output and "--columns" in result.output


def test_times_in_mixed_layouts_are_read(tmp_path):
    frame = orders_frame()
    frame.loc[frame["when"] == "2024-02-10 10:00", "when"] = "2/10/2024 10:00"   # US layout, as in UCI's CSV
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    payload = json.loads(run(path, "--json").stdout)
    assert payload["rows"]["unparseable_time"] == 0 and payload["customers"] == 20


def test_unparseable_cutoff(csv_file):
    result = run(csv_file.parent / "orders.csv", "--cutoff", "10/02/2024")
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output


def test_unreadable_file(tmp_path):
    broken = tmp_path / "orders.parquet"
    broken.write_text("not parquet")
    result = run(broken)
    assert result.exit_code == 2 and "orders.parquet" in result.output and "Parquet" in result.output
    missing = run(tmp_path / "nope.csv")
    assert missing.exit_code == 2 and "file not found" in missing.output


def test_cutoff_outside_the_data(csv_file):
    result = run(csv_file, "--cutoff", "2030-01-01")
    assert result.exit_code == 2 and "2024-01-10 to 2024-02-10" in result.output


def test_unknown_mapping_key_lists_the_valid_ones(csv_file):
    result = run(csv_file, "--columns", "buyer=cust")
    assert result.exit_code == 2 and "unknown key" in result.output and "buyer" in result.output
