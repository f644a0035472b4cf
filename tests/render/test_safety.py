"""Customer data cannot inject HTML or headers, templates cannot escape the sandbox, and a
misspelt variable fails the render loudly."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError

from lojal.config import load_config
from lojal.errors import HeaderInjectionError, RenderError
from lojal.render import load_templates
from lojal.render.samples import SAMPLE_CUSTOMERS, sample_context

SCRIPT = "<script>alert('x')</script>"


def _context(shipped_config, campaign_id="post_purchase", sample=0):
    return sample_context(shipped_config.campaign(campaign_id), SAMPLE_CUSTOMERS[sample])


def test_a_customer_named_script_is_escaped_in_html(shipped, shipped_config):
    context = _context(shipped_config)
    context["customer"]["first_name"] = SCRIPT
    context["recommendations"][1]["title"] = '"><img src=x onerror=alert(1)>'
    context["last_order"]["items"][0]["title"] = "<b>bold</b>"
    email = shipped.render("post_purchase", "en", context)
    assert "<script>" not in email.html and "<img src=x" not in email.html and "<b>bold" not in email.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in email.html
    assert 'alt="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in email.html
    # the subject and text part are not HTML: they carry the name as typed
    assert SCRIPT in email.subject and SCRIPT in email.text


def test_reason_parameters_are_escaped_too(shipped, shipped_config):
    context = _context(shipped_config)
    context["recommendations"][0].update(reason_code="bought_together", reason_params={"product": SCRIPT})
    email = shipped.render("post_purchase", "en", context)
    assert "Often bought together with &lt;script&gt;" in email.html


@pytest.mark.parametrize("name", ["Eve\r\nBcc: all@example.com", "Eve\nX-Evil: 1", "Eve\rX"])
def test_line_breaks_in_the_subject_are_rejected(shipped, shipped_config, name):
    context = _context(shipped_config)
    context["customer"]["first_name"] = name
    with pytest.raises(HeaderInjectionError, match="subject"):
        shipped.render("post_purchase", "en", context)


def test_undefined_variable_names_template_locale_and_variable(shipped, shipped_config):
    context = _context(shipped_config)
    del context["customer"]["first_name"]
    with pytest.raises(RenderError) as error:
        shipped.render("post_purchase", "nb", context)
    message = str(error.value)
    assert "post_purchase" in message and "(nb)" in message and "first_name" in message


def test_missing_top_level_variable_is_a_render_error(shipped, shipped_config):
    context = _context(shipped_config)
    del context["message"]
    with pytest.raises(RenderError, match="'message' is undefined"):
        shipped.render("post_purchase", "en", context)


def test_unknown_template_or_locale_is_a_render_error(shipped, shipped_config):
    with pytest.raises(RenderError, match="no compiled template"):
        shipped.render("post_purchase", "de", _context(shipped_config))
    with pytest.raises(RenderError, match="no compiled template"):
        shipped.render("newsletter", "en", _context(shipped_config))


def test_templates_run_sandboxed(shipped):
    environment = shipped.environments.html["en"]
    with pytest.raises(SecurityError, match="'__class__' of 'dict' object is unsafe"):
        environment.from_string("{{ customer.__class__.__mro__ }}").render(customer={})
    with pytest.raises(SecurityError, match="__globals__"):
        environment.from_string("{{ ''.format.__globals__ }}").render()


def test_a_template_reaching_for_internals_fails_the_render(project, one_campaign):
    email = project.templates_dir / "birthday" / "email.mjml"
    email.write_text(email.read_text().replace("{{ t.intro }}", "{{ t.intro }} {{ customer.__class__ }}"))
    config = load_config(project)
    templates = load_templates(project, one_campaign(config, "birthday"))
    with pytest.raises(RenderError, match="not allowed in templates: access to attribute '__class__'"):
        templates.render("birthday", "en", sample_context(config.campaign("birthday"), SAMPLE_CUSTOMERS[0]))
