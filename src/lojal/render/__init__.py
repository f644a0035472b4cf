"""MJML + Jinja2 e-mail templates: compiled once per (template, locale), personalized per recipient.

    load_templates(paths, config) -> TemplateSet      compile everything; ProjectError if broken
    TemplateSet.render(template, locale, context) -> RenderedEmail(subject, preheader, html, text)
    check_templates(paths, config) -> list[Problem]   the template part of `lojal check`

See docs/templates.md.
"""

from lojal.render.lint import check_templates
from lojal.render.templates import RenderedEmail, TemplateSet, load_templates

__all__ = ["RenderedEmail", "TemplateSet", "check_templates", "load_templates"]
