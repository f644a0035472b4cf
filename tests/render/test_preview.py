"""`lojal preview`: static pages, a server that rebuilds when templates change, and what a real
headless Chromium shows (skipped with a reason when Debian's `chromium` is not installed)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headless import chromium, count_pixels, decode_png, live_page, needs_chromium, screenshot, wait_for
from lojal.render.cli import app
from lojal.render.preview import PreviewServer

BRAND_BLUE = (0x1F, 0x5F, 0x8B)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8")


@pytest.fixture
def server(project):
    preview = PreviewServer(project, port=0)
    preview.start()
    yield preview
    preview.stop()


@pytest.fixture(scope="module")
def shipped_server(shipped_paths):
    """Read-only server on the shipped project, shared by the browser tests."""
    preview = PreviewServer(shipped_paths, port=0)
    preview.start()
    yield preview
    preview.stop()


def test_preview_out_writes_every_campaign_locale_and_sample(project, tmp_path):
    out = tmp_path / "site"
    result = CliRunner().invoke(app, ["--out", str(out), "--project", str(project.project)])
    assert result.exit_code == 0, result.output
    # 9 campaigns x 5 sample customers (2 in nb), less nb-solveig for tier_upgrade (Bronze is no upgrade)
    assert "Wrote 44 previews" in result.output
    view = (out / "view" / "birthday" / "nb" / "nb-bjorn.html").read_text()
    assert "Gratulerer med dagen, Bjørn Åge!" in view and 'src="../../../email/birthday/nb/nb-bjorn.html"' in view
    assert "Meld deg av" in (out / "email" / "birthday" / "nb" / "nb-bjorn.html").read_text()
    assert "Nordlys Hjem AS, Storgata 1" in (out / "text" / "birthday" / "nb" / "nb-bjorn.txt").read_text()
    assert "__version" not in view  # static pages do not poll a server


def test_preview_without_out_or_command_shows_help():
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2 and "serve" in result.output


def test_server_rebuilds_when_a_template_changes(server, project):
    page = server.url + "view/win_back/sv/sv-asa.html"
    assert "Åsa, kom och se vad som är nytt" in _get(page)
    assert _get(server.url + "__version") == "0"
    strings = project.templates_dir / "win_back" / "strings.yaml"
    strings.write_text(strings.read_text().replace("kom och se vad som är nytt", "välkommen tillbaka"))
    deadline = time.monotonic() + 20
    while _get(server.url + "__version") == "0" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _get(server.url + "__version") == "1"
    assert "Åsa, välkommen tillbaka" in _get(page)


def test_server_shows_problems_of_a_broken_template(server, project):
    email = project.templates_dir / "survey" / "email.mjml"
    email.write_text(email.read_text().replace("</mj-group>", "</mj-section>", 1))
    assert server.rebuild_if_changed()
    index = _get(server.url)
    assert 'id="problems"' in index and "templates/survey/email.mjml:" in index


@pytest.mark.browser
@needs_chromium
def test_chromium_reloads_the_open_page_when_a_template_changes(server, project, tmp_path):
    page = server.url + "view/win_back/sv/sv-asa.html"
    with live_page(tmp_path, page) as evaluate:
        body = "document.body ? document.body.innerText : ''"
        assert wait_for(lambda: "Åsa, kom och se vad som är nytt" in evaluate(body))
        evaluate("window.__before_reload = true")
        strings = project.templates_dir / "win_back" / "strings.yaml"
        strings.write_text(strings.read_text().replace("kom och se vad som är nytt", "välkommen tillbaka"))
        assert wait_for(lambda: "Åsa, välkommen tillbaka" in evaluate(body), timeout=30), evaluate(body)
        assert evaluate("window.__before_reload === undefined")  # a reload, not an edit in place


@pytest.mark.browser
@needs_chromium
def test_chromium_renders_the_email_page(shipped_server, tmp_path):
    result = chromium(tmp_path, "--dump-dom", shipped_server.url + "email/post_purchase/da/da-soren.html")
    assert "Tak for din bestilling!" in result.stdout and "Hej Søren Æblø," in result.stdout
    assert "Afmeld" in result.stdout and "Nordlys Hjem AS, Storgata 1, 0155 Oslo, Norway" in result.stdout


@pytest.mark.browser
@needs_chromium
def test_chromium_screenshot_shows_the_email_at_desktop_and_mobile_width(shipped_server, tmp_path):
    page = shipped_server.url + "view/survey/da/da-soren.html"
    dom = chromium(tmp_path, "--dump-dom", page).stdout
    assert "Hvordan var din bestilling, Søren Æblø?" in dom and 'id="desktop"' in dom and 'id="mobile"' in dom
    shot = tmp_path / "view.png"
    screenshot(tmp_path, page, shot, 1100, 700)
    width, height, rows = decode_png(shot.read_bytes())
    assert (width, height) == (1100, 700)
    # The five rating buttons are brand blue, drawn inside each iframe: desktop frame starts at
    # x=24 (640 px wide), the mobile frame to its right (375 px).
    assert count_pixels(rows, BRAND_BLUE, 24, 24 + 640) > 5 * 1000
    assert count_pixels(rows, BRAND_BLUE, 24 + 640 + 20, 1100) > 5 * 1000
    assert count_pixels(rows, BRAND_BLUE, 0, 20) == 0  # left margin of the page: no e-mail there


def test_preview_draws_one_real_customer_per_locale_from_a_store_with_data(project):
    """With data in the store, each campaign x locale shows a customer of tonight's audience, in
    their market's currency and language; the built-in samples are gone."""

    from lojal.render.preview import build_site
    from lojal.sample import generate_shop
    from lojal.sample.store import write_sample_shop
    from lojal.store import connect

    import shutil

    shutil.copytree(Path(__file__).resolve().parents[2] / "segments", project.project / "segments")
    from lojal.clock import shop_today
    from lojal.config import load_config

    # The shop's today, not the machine's: between midnight in the shop's zone and midnight UTC
    # the preview's night is a day later than date.today().
    zone = load_config(project).brand.timezone
    shop = generate_shop(600, seed=5, until=shop_today(zone))
    write_sample_shop(connect(project.database_url), shop, replace=False)
    site = build_site(project)
    index = site.files["index.html"][1].decode()
    assert "sv-asa" not in index and 'name="viewport"' in index
    customers = shop.customers.set_index("customer_id")
    shown = [path for path in site.files if path.startswith("email/post_purchase/")]
    assert shown, index
    currency = {"nb": "kr\u00a0", "sv": "\u00a0kr", "da": "\u00a0kr.", "en": "€"}
    for path in shown:
        _, _, locale, key = path.removesuffix(".html").split("/")
        customer = customers.loc[int(key.split("-")[1])]
        assert customer["locale"] == locale == key.split("-")[0]
        html = site.files[path][1].decode()
        assert currency[locale] in html and "NOK" not in html
        if locale != "en":  # a product title in the customer's language
            titles = set(shop.texts[shop.texts["locale"] == locale]["title"])
            assert any(title in html for title in titles), path


def test_index_lists_each_templates_problems_per_locale(project):
    from lojal.render.preview import NO_SAMPLES, build_site

    strings = project.templates_dir / "win_back" / "strings.yaml"
    text = strings.read_text(encoding="utf-8")
    sv_line = next(line for line in text.splitlines() if line.startswith("  sv:"))
    strings.write_text(text.replace(sv_line, '  sv: "{{ customer.first_name "', 1), encoding="utf-8")
    index = build_site(project, samples=NO_SAMPLES).files["index.html"][1].decode()
    rows = [row for row in index.split("<tr>") if row.startswith("<td>win_back</td>")]
    sv_rows = [row for row in rows if "<td>sv</td>" in row]
    assert sv_rows and all("Jinja syntax error" in row and "(sv)" in row for row in sv_rows)
    assert all("Jinja syntax error" not in row for row in rows if "<td>sv</td>" not in row)
