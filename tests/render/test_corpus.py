"""Templates marketers bring (tests/render/corpus, written for this test in the style of MJML's
example templates): each compiles with Lojal's default engine, and where Node and the pinned
official MJML are installed, it looks the same as official MJML's output in headless Chromium at
desktop and mobile width (share of differing pixels below a small threshold)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jinja2.sandbox import SandboxedEnvironment

from headless import CHROMIUM, needs_chromium, screenshot
from lojal.render.mjml_compile import NodeMjml, PythonMjml, node_mjml_available
from lojal.render.sources import ExpandedSource, check_structure

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.mjml"))
WIDTHS = {"desktop": 600, "mobile": 375}
HEIGHT = 1800
MAX_DIFFERENT = 0.01  # share of pixels that may differ between Lojal's and official MJML's rendering
CONTEXT = {"customer": {"first_name": "Åse"}, "brand": {"postal_address": "Nordlys Hjem AS, Storgata 1, 0155 Oslo"},
           "message": {"unsubscribe_url": "https://nordlys.example/unsubscribe/m-1"}}
_IMAGE = re.compile(r"https://cdn\.example/([a-z0-9-]+)\.png")
needs_node = pytest.mark.skipif(not node_mjml_available(), reason="official MJML needs `node` and "
                                "`npm install --prefix bench/node` (Node is optional)")


def _personalized(html: str) -> str:
    return SandboxedEnvironment(autoescape=True).from_string(html).render(CONTEXT)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_template_compiles_with_lojal_and_its_output_is_outlook_safe(path):
    source = path.read_text(encoding="utf-8")
    assert check_structure(ExpandedSource(source, [(path.name, n) for n in range(1, source.count("\n") + 2)])) == []
    html = _personalized(PythonMjml().compile(source))
    assert "Storgata 1" in html and "Unsubscribe" in html and ("Åse" in html or "first_name" not in source)
    assert "<!--[if !mso><!-->" not in html
    assert not re.search(r'<img\b[^>]*\swidth="\d+\.\d', html), "Outlook reads img width as whole pixels"
    if 'inline="inline"' in source:  # the CSS went into style attributes, not a <style> block
        css = re.search(r'<mj-style inline="inline">(.*?)</mj-style>', source, re.S).group(1)
        first_rule = re.search(r"\{\s*([a-z-]+)\s*:", css).group(1)
        assert re.search(rf'style="[^"]*{first_rule}\s*:', html)
        assert css.strip().splitlines()[0].strip() not in html


def test_corpus_covers_what_the_python_port_used_to_break():
    sources = "".join(p.read_text() for p in CORPUS)
    assert 'mj-style inline="inline"' in sources
    assert re.search(r'<mj-font name="(Roboto|Open Sans|Lato)"', sources)
    assert "<mj-navbar" in sources and "<mj-carousel" in sources and '.5px"' in sources


def _images(folder: Path, html: str) -> str:
    from PIL import Image

    colours = [(31, 95, 139), (192, 57, 43), (39, 174, 96), (241, 196, 15), (142, 68, 173), (44, 62, 80)]
    for index, name in enumerate(sorted(set(_IMAGE.findall(html)))):
        Image.new("RGB", (600, 300), colours[index % len(colours)]).save(folder / f"{name}.png")
    return _IMAGE.sub(r"\1.png", html)


def _screenshot(tmp_path: Path, html_file: Path, width: int) -> Path:
    shot = html_file.with_suffix(f".{width}.png")
    return screenshot(tmp_path, html_file.as_uri(), shot, width, HEIGHT)


def _different_share(a: Path, b: Path) -> float:
    from PIL import Image, ImageChops

    first, second = Image.open(a).convert("RGB"), Image.open(b).convert("RGB")
    assert first.size == second.size
    difference = ImageChops.difference(first, second).convert("L").point(lambda v: 255 if v > 24 else 0)
    return difference.histogram()[255] / (first.size[0] * first.size[1])


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
@needs_node
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_template_looks_like_official_mjml_at_desktop_and_mobile_width(path, tmp_path):
    source = path.read_text(encoding="utf-8")
    with NodeMjml() as node:
        official, errors = node.compile_with_errors(source)
    assert errors == []
    files = {}
    for name, html in (("lojal", PythonMjml().compile(source)), ("official", official)):
        files[name] = tmp_path / f"{name}.html"
        files[name].write_text(_images(tmp_path, _personalized(html)), encoding="utf-8")
    for label, width in WIDTHS.items():
        share = _different_share(_screenshot(tmp_path, files["lojal"], width),
                                 _screenshot(tmp_path, files["official"], width))
        assert share < MAX_DIFFERENT, f"{path.name} at {label} width: {share:.2%} of pixels differ"


def test_screenshot_comparison_notices_a_real_difference(tmp_path):
    """The comparison is not blind: a template with one paragraph more differs beyond the threshold."""
    if CHROMIUM is None:
        pytest.skip("needs Debian's `chromium`")
    source = CORPUS[0].read_text(encoding="utf-8")
    changed = source.replace("<mj-button ", "<mj-text font-size=\"40px\">An extra headline</mj-text><mj-button ", 1)
    files = []
    for name, text in (("a", source), ("b", changed)):
        files.append(tmp_path / f"{name}.html")
        files[-1].write_text(_images(tmp_path, _personalized(PythonMjml().compile(text))), encoding="utf-8")
    share = _different_share(_screenshot(tmp_path, files[0], 600), _screenshot(tmp_path, files[1], 600))
    assert share > MAX_DIFFERENT
