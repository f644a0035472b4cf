"""The hostile corpus (tests/hostile/): files an attacker or a careless user could write, each
with the exact message Lojal must give. Nothing here may hang, exhaust memory, print a
traceback, read a file outside the project, or store a wrong value.

    tests/hostile/segments/*.yaml   YAML bombs, aliases, merge keys, nesting, NUL, overflowing values
    tests/hostile/templates/*.mjml  win_back/email.mjml variants: includes out of templates/, render limits
    tests/hostile/imports/*.csv     ambiguous numbers and dates, ids through floats, same mailbox, orders
plus cases built here that git cannot hold (symlinks, oversized files) or that edit shipped files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from lojal.config import ProjectConfig, load_config
from lojal.errors import DataImportError, ProjectError
from lojal.paths import Paths
from lojal.render import check_templates
from lojal.segments import check_segments
from lojal.store import connect, schema
from lojal.store.importer import import_file

REPO = Path(__file__).resolve().parents[1]
HOSTILE = Path(__file__).parent / "hostile"
ALIAS = "YAML aliases (*{}) are not allowed: write the value out in full"

SEGMENT_CASES = {
    "billion_laughs": "segments/billion_laughs.yaml:6:9: " + ALIAS.format("a"),
    "recursive_alias": "segments/recursive_alias.yaml:5:7: " + ALIAS.format("loop"),
    "merge_key": "segments/merge_key.yaml:4:3: merge keys (<<) are not allowed: write the keys out in full",
    "deep_nesting": "segments/deep_nesting.yaml:3:237: nested more than 40 levels deep: simplify the structure",
    "nul_byte": "segments/nul_byte.yaml:2:24: control character U+0000 is not allowed in YAML: delete it (the file "
                "may be binary or damaged)",
    "huge_integer": "segments/huge_integer.yaml:4:22: number with 200 digits is far too large: write a number such as 100",
    "big_threshold": "segments/big_threshold.yaml:4:22: 'total_spend': 100000000000\u2026 is out of range: use a number between "
                     "-1e+15 and 1e+15",
    "infinite_threshold": "segments/infinite_threshold.yaml:4:22: '.inf' is not a finite number: write a number such as 100",
    "nan_threshold": "segments/nan_threshold.yaml:4:21: '.nan' is not a finite number: write a number such as 100",
    "years_overflow": "segments/years_overflow.yaml:4:24: date '99999999 years ago' for 'last_order_at' is too far "
                      "from the run date: use at most 100 years",
    "days_overflow": "segments/days_overflow.yaml:4:24: date 'in 999999999999 days' for 'last_order_at' is too far "
                     "from the run date: use at most 36500 days (100 years)",
    "ordered_overflow": "segments/ordered_overflow.yaml:4:21: ordered_days_ago 99999999999999999999 is too far back: "
                        "use at most 36500 days (100 years)",
    "far_date": "segments/far_date.yaml:4:24: date 9999-12-31 for 'last_order_at' is out of range: use a year from "
                "1900 to 2199",
    "union_type": "segments/union_type.yaml:4:22: where.bought.category: Input should be a valid string or a valid list",
}


def segments_project(tmp_path: Path, *names: str) -> Paths:
    (tmp_path / "segments").mkdir()
    for name in names:
        shutil.copy(HOSTILE / "segments" / f"{name}.yaml", tmp_path / "segments" / f"{name}.yaml")
    return Paths.resolve(tmp_path)


def test_every_hostile_segment_file_is_in_the_corpus():
    assert {p.stem for p in (HOSTILE / "segments").glob("*.yaml")} == set(SEGMENT_CASES)


@pytest.mark.parametrize("name", list(SEGMENT_CASES))
def test_hostile_segment_file_gives_its_message(tmp_path, name):
    assert [str(p) for p in check_segments(segments_project(tmp_path, name))] == [SEGMENT_CASES[name]]


def test_an_oversized_yaml_file_is_refused_without_reading_it_whole(tmp_path):
    paths = segments_project(tmp_path)
    (tmp_path / "segments" / "huge.yaml").write_text("name: huge\n" + "# padding\n" * 300_000, encoding="utf-8")
    assert [str(p) for p in check_segments(paths)] == [
        "segments/huge.yaml: file is 2929 KB; files here are at most 512 KB: split or shorten it"]


# -- templates ----------------------------------------------------------------------------------

LOCALES = ("da", "en", "nb", "sv")


def _per_locale(line: int | None, message: str) -> list[str]:
    where = f"templates/win_back/email.mjml{f':{line}' if line else ''}"
    return [f"{where}: campaign win_back, sample en-olivia: ({locale}): {message}" for locale in LOCALES]


OUTSIDE = "is outside templates/: includes must stay inside the templates folder"
ONE_LINE = 'write an include on one line as <mj-include path="file.mjml" /> (double quotes, nothing else)'
TEMPLATE_CASES = {
    "include_passwd": [f"templates/win_back/email.mjml:18:5: mj-include path '../../../../../../../../etc/passwd' {OUTSIDE}"],
    "include_environ": [f"templates/win_back/email.mjml:18:5: mj-include path '/proc/self/environ' {OUTSIDE}"],
    "include_multiline": [f"templates/win_back/email.mjml:18:5: {ONE_LINE}"],
    "include_single_quotes": [f"templates/win_back/email.mjml:18:5: {ONE_LINE}"],
    "nested_loops": _per_locale(12, "over a limit: more than 200,000 loop iterations in one e-mail"),
    "string_multiplication": _per_locale(12, "over a limit: '*' would build a value over the limit of 2,000,000"),
    "string_doubling": _per_locale(12, "over a limit: a value of 3,145,728 characters or items is over the limit "
                                       "of 2,000,000"),
    "format_width": _per_locale(12, "over a limit: a format width or precision of six or more digits, or one taken from the arguments, is not allowed"),
    "filter_width": _per_locale(12, "over a limit: the number 1000000000 is too large here (at most 100,000)"),
    "macro_recursion": _per_locale(12, "over a limit: recursion too deep (a macro calling itself?)"),
    "huge_output": _per_locale(12, "over a limit: one e-mail's output is over 2 million characters"),
    "class_escape": _per_locale(12, "not allowed in templates: access to attribute '__class__' of 'dict' object "
                                    "is unsafe."),
}


@pytest.fixture
def template_project(tmp_path) -> Paths:
    for folder in ("config", "templates"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return Paths(project=tmp_path, state=tmp_path / "var")


def only_win_back(config: ProjectConfig) -> ProjectConfig:
    campaigns = [c.model_copy(update={"enabled": c.id == "win_back"}) for c in config.campaigns.campaigns]
    return config.model_copy(update={"campaigns": config.campaigns.model_copy(update={"campaigns": campaigns})})


def template_errors(paths: Paths) -> list[str]:
    return [str(p) for p in check_templates(paths, only_win_back(load_config(paths))) if p.severity == "error"]


def test_every_hostile_template_is_in_the_corpus():
    assert {p.stem for p in (HOSTILE / "templates").glob("*.mjml")} == set(TEMPLATE_CASES)


@pytest.mark.parametrize("name", list(TEMPLATE_CASES))
def test_hostile_template_gives_its_located_message(template_project, name):
    shutil.copy(HOSTILE / "templates" / f"{name}.mjml", template_project.templates_dir / "win_back" / "email.mjml")
    assert template_errors(template_project) == TEMPLATE_CASES[name]


def test_an_include_through_a_symlink_out_of_templates_is_refused(template_project, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SENDGRID_API_KEY=SG.secret", encoding="utf-8")
    (template_project.templates_dir / "_shared" / "innocent.mjml").symlink_to(secret)
    email = template_project.templates_dir / "win_back" / "email.mjml"
    email.write_text(email.read_text().replace('<mj-include path="../_shared/footer.mjml" />',
                                               '<mj-include path="../_shared/footer.mjml" />\n'
                                               '    <mj-include path="../_shared/innocent.mjml" />'))
    assert template_errors(template_project) == [
        f"templates/win_back/email.mjml:18:5: mj-include path '../_shared/innocent.mjml' {OUTSIDE}"]


def test_a_template_folder_symlinked_out_of_templates_is_refused(template_project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(template_project.templates_dir / "win_back", elsewhere)
    shutil.rmtree(template_project.templates_dir / "win_back")
    (template_project.templates_dir / "win_back").symlink_to(elsewhere, target_is_directory=True)
    assert template_errors(template_project) == [
        "templates/win_back: template 'win_back' resolves outside templates/ (a symlink?): templates must be "
        "inside the templates folder"]


def test_a_campaign_template_cannot_be_a_path(template_project):
    campaigns = template_project.config_dir / "campaigns.yaml"
    lines = campaigns.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if "template: win_back" in text)
    index = sum(text.startswith("  - id:") for text in lines[:line]) - 1  # the campaign's position in the list
    campaigns.write_text(campaigns.read_text().replace("template: win_back", "template: ../../../etc"))
    with pytest.raises(ProjectError) as caught:
        load_config(template_project)
    assert [str(p) for p in caught.value.problems] == [
        f"config/campaigns.yaml:{line}:15: campaigns.{index}.template: '../../../etc' is not a folder name under "
        "templates/: use letters, digits, _ and - (no paths, no '..')"]


def test_an_include_smuggled_in_through_a_string_is_refused(template_project):
    strings = template_project.templates_dir / "win_back" / "strings.yaml"
    text = strings.read_text()
    strings.write_text(text.replace('en: "It has been a while', 'en: "<mj-include path=\'/etc/passwd\' /> It has been a while'))
    assert template_errors(template_project) == [
        "templates/win_back/email.mjml:11: mj-include inside a string of templates/win_back/strings.yaml is not "
        "allowed: strings are text"]


def test_reason_texts_cannot_reach_python_objects(template_project):
    strings = template_project.templates_dir / "_shared" / "strings.yaml"
    strings.write_text(strings.read_text().replace('en: "Often bought together with {product}"',
                                                   'en: "Often bought together with {product.__class__}"'))
    assert [e for e in template_errors(template_project) if "reason" in e] == [
        "templates/_shared/strings.yaml:41:1: reason 'bought_together' (en): placeholder {product.__class__} is not "
        "allowed: use a plain name such as {product}"]


# -- lojal check: every hostile file at once, one problem per line, no traceback ------------------

def test_check_reports_the_whole_corpus_one_problem_per_line_on_a_narrow_terminal(tmp_path):
    project = tmp_path / "project"
    for folder in ("config", "segments", "templates"):
        shutil.copytree(REPO / folder, project / folder)
    for path in (HOSTILE / "segments").glob("*.yaml"):
        shutil.copy(path, project / "segments" / path.name)
    shutil.copy(HOSTILE / "templates" / "include_environ.mjml", project / "templates" / "win_back" / "email.mjml")
    env = {**os.environ, "COLUMNS": "40", "LOJAL_HOME": str(tmp_path / "state")}
    env.pop("LOJAL_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", "from lojal.cli import main; main()", "check", "--project", str(project)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    expected = sorted([SEGMENT_CASES[name] for name in SEGMENT_CASES]
                      + [f"templates/win_back/email.mjml:18:5: mj-include path '/proc/self/environ' {OUTSIDE}"])
    assert sorted(lines) == expected
    assert done.stdout.splitlines()[-1] == f"{len(expected)} error(s), 0 warning(s)"


# -- imports -------------------------------------------------------------------------------------

CUSTOMERS_SEED = ("customer_id,email,first_name,locale,country,time_zone,birthday,created_at,consent_email\n"
                  "1,x1@example.com,A,en,GB,Europe/London,,2025-01-01,true\n"
                  "2,x2@example.com,B,en,GB,Europe/London,,2025-01-01,true\n")
PRODUCTS_SEED = ("sku,title,category,price,currency,image_url,product_url,in_stock,margin\n"
                 "A,Coffee,Coffee,149,NOK,,,true,\nB,Mug,Tableware,99.5,NOK,,,true,\n")
AMBIGUOUS = "is ambiguous: write numbers with a dot for decimals and no thousands separator, e.g. 1299 or 12.99"
SAME_ORDER = "on the order's first line; every line of an order has the same customer_id, placed_at and currency"
IMPORT_CASES = {
    "products_thousands_comma": [f"2: column 'price': '1,299' {AMBIGUOUS}"],
    "products_bad_prices": ["2: column 'price': '-10' is out of range: it must be more than 0",
                            "3: column 'price': '0' is out of range: it must be more than 0",
                            "4: column 'price': 'inf' is not a number",
                            "5: column 'price': 'NaN' is not a number",
                            "6: column 'price': '1e400' is not a number"],
    "customers_ambiguous_dates": [
        "2: column 'birthday': '04.03.1990' is not a date; use ISO 8601 like 2026-11-23",
        "3: column 'created_at': 'now' is not a date; use ISO 8601 like 2026-11-23 or 2026-11-23T14:05:00Z",
        "4: column 'birthday': 'today' is not a date; use ISO 8601 like 2026-11-23",
        "5: column 'created_at': '03/04/2025' is not a date; use ISO 8601 like 2026-11-23 or 2026-11-23T14:05:00Z"],
    "customers_ids": [
        "3: column 'customer_id': '1.23457E+11' is not a whole number; write every digit, not scientific notation "
        "(Excel: format the column as text)",
        "4: column 'customer_id': '12.0' is not a whole number"],
    "customers_long_name": ["2: column 'first_name': 10000 characters, more than the 100 the store keeps; shorten it"],
    "customers_same_mailbox": [
        "3: e-mail 'ase@example.com' (customer_id 2) is the same mailbox as 'Ase@example.com' (customer_id 1, row 2): "
        "addresses differ only in case; keep one customer"],
    "orders_bad_quantities": ["2: column 'quantity': '-2' is out of range: use a whole number from 1 to 1 000 000",
                              "3: column 'quantity': '0' is out of range: use a whole number from 1 to 1 000 000",
                              "4: column 'quantity': '1.5' is not a whole number",
                              "5: column 'unit_price': '-149' is out of range: it must be at least 0"],
    "orders_inconsistent": [f"3: order 10: customer_id 2 differs from 1 {SAME_ORDER}",
                            f"5: order 11: placed_at 2026-11-21 09:00:00 differs from 2026-11-20 08:00:00 {SAME_ORDER}",
                            f"7: order 12: currency SEK differs from NOK {SAME_ORDER}"],
}


def _store_for(kind: str, tmp_path: Path):
    engine = connect(f"sqlite:///{tmp_path / 'store.db'}")
    if kind == "orders":
        (tmp_path / "c.csv").write_text(CUSTOMERS_SEED, encoding="utf-8")
        (tmp_path / "p.csv").write_text(PRODUCTS_SEED, encoding="utf-8")
        import_file(engine, "customers", tmp_path / "c.csv")
        import_file(engine, "products", tmp_path / "p.csv")
    return engine


@pytest.mark.parametrize("name", list(IMPORT_CASES))
def test_hostile_import_is_rejected_with_row_messages(tmp_path, name):
    kind = name.split("_")[0]
    engine = _store_for(kind, tmp_path)
    path = HOSTILE / "imports" / f"{name}.csv"
    with pytest.raises(DataImportError) as caught:
        import_file(engine, kind, path)
    assert [str(p) for p in caught.value.problems] == [f"{path}:{m}" for m in IMPORT_CASES[name]]
    table = {"customers": schema.customers, "products": schema.products, "orders": schema.orders}[kind]
    with engine.connect() as conn:
        assert conn.execute(select(table)).all() == []  # nothing of a rejected file is written


def test_ids_are_read_exactly_and_addresses_normalized(tmp_path):
    engine = _store_for("customers", tmp_path)
    lines = (HOSTILE / "imports" / "customers_ids.csv").read_text(encoding="utf-8").splitlines()
    exact = tmp_path / "ids.csv"
    exact.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    import_file(engine, "customers", exact)
    import_file(engine, "customers", HOSTILE / "imports" / "customers_international.csv")
    with engine.connect() as conn:
        rows = dict(conn.execute(select(schema.customers.c.customer_id, schema.customers.c.email)).all())
    assert rows == {9007199254740993: "big@example.com", 1: "pelé@example.com", 2: "Ase@xn--bcher-kva.example"}


def test_a_mailbox_already_in_the_store_is_a_row_error(tmp_path):
    engine = _store_for("orders", tmp_path)  # customers 1 and 2 (x1@, x2@example.com)
    path = tmp_path / "more.csv"
    path.write_text(CUSTOMERS_SEED.splitlines()[0] + "\n3,X1@Example.com,C,en,GB,Europe/London,,2025-01-01,true\n",
                    encoding="utf-8")
    with pytest.raises(DataImportError) as caught:
        import_file(engine, "customers", path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:2: e-mail 'X1@example.com' (customer_id 3) is already the address of customer_id 1 "
        "('x1@example.com') in the store; one mailbox is one customer"]
