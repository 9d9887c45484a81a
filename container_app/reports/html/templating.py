"""The Jinja2 environment of the pages: templates shipped in `container_app/reports/html/templates/`."""

from __future__ import annotations

from functools import cache

import jinja2

from container_app import __version__
from container_app.support.compiled_cache import template_bytecode_cache

TOOL = f"xnat-resource-survey {__version__}"  # as the pages name the tool that made them


@cache
def environment() -> jinja2.Environment:
    """The template environment: package templates, autoescaping on for everything, undefined is an error."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("container_app.reports.html", "templates"),
        bytecode_cache=template_bytecode_cache(),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
