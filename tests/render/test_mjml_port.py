"""What Lojal does around the Python MJML port: inlined CSS without moving Jinja, a redeclared
built-in font, and the port's Outlook faults corrected."""

from __future__ import annotations

import re

from lojal.render.mjml_compile import PythonMjml
from lojal.render.mjml_port import fix_output, protect_jinja, restore_jinja

LOOP = """<mjml><mj-head><mj-style inline="inline">.name a {{ color: #c0392b; }}</mj-style></mj-head><mj-body>
<mj-section><mj-column><mj-text>Hi {{{{ customer.first_name }}}}</mj-text>
<mj-raw>{{% for rec in recommendations %}}</mj-raw>
<mj-text css-class="name"><a href="{{{{ rec.product_url | utm('product') }}}}">{{{{ rec.title }}}}</a></mj-text>
<mj-raw>{{% endfor %}}</mj-raw>
</mj-column></mj-section></mj-body></mjml>"""


def test_inlined_css_lands_in_style_attributes_and_jinja_stays_between_the_table_rows():
    html = PythonMjml().compile(LOOP.format())
    assert re.search(r"</tr>\s*\{% for rec in recommendations %\}\s*<tr>", html), html
    assert re.search(r"</tr>\s*\{% endfor %\}\s*<tr>|</tr>\s*\{% endfor %\}\s*</tbody>", html), html
    assert re.search(r'<a href="\{\{ rec.product_url \| utm\(\'product\'\) \}\}" style="color: #c0392b;?">'
                     r"\{\{ rec.title \}\}</a>", html), html
    assert ".name a" not in html  # inline-only CSS is not left in a <style> block


def test_jinja_placeholders_round_trip_and_statements_in_text_become_comments():
    source = ('<table><tr><td class="{% if vip %}gold{% endif %}">{{ a > b }}</td></tr>{% for x in y %}'
              "<tr><td>{# note #}</td></tr>{% endfor %}<!--[if mso]>{% if z %}<![endif]--></table>")
    protected, tags = protect_jinja(source)
    assert "{" not in protected
    assert "<!--LOJALJ3Z--><tr>" in protected and 'class="LOJALJ0ZgoldLOJALJ1Z"' in protected
    assert "<!--[if mso]>LOJALJ6Z<![endif]-->" in protected  # no comment nested in a comment
    assert restore_jinja(protected, tags) == source


def test_a_redeclared_builtin_font_replaces_its_url_instead_of_crashing():
    html = PythonMjml().compile('<mjml><mj-head><mj-font name="Roboto" href="https://fonts.example/roboto.css" />'
                                '</mj-head><mj-body><mj-section><mj-column><mj-text font-family="Roboto, Arial">Hei'
                                "</mj-text></mj-column></mj-section></mj-body></mjml>")
    assert '<link href="https://fonts.example/roboto.css" rel="stylesheet"' in html
    assert "family=Roboto:300,400,500,700" not in html


def test_outlook_conditional_and_fractional_image_widths_are_corrected():
    html = '<!--[if !mso><!--><div>x</div><!--<![endif]--><img src="a.png" width="216.5" style="width:100%">'
    assert fix_output(html) == '<!--[if !mso]><!--><div>x</div><!--<![endif]--><img src="a.png" width="216" style="width:100%">'
