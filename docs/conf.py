"""Sphinx configuration: the pages are MyST Markdown; the API reference comes from docstrings.

Built by `python3 -m nox -s docs`, warnings as errors.
"""

from __future__ import annotations

from django_db_geventpool import __version__

project = "geventpool"
author = "geventpool contributors"
copyright = "geventpool contributors"
release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Links to a heading of another page: [text](page.md#heading).
myst_heading_anchors = 3
# The docstrings cite names in backquotes, `!name` where no link is meant (psycopg's style).
default_role = "code"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}

html_theme = "alabaster"
html_title = f"geventpool {release}"


def _no_link_marks(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    # `!name` in a docstring means "a name, not a link" (psycopg's habit): shown as `name`.
    lines[:] = [line.replace("`!", "`") for line in lines]


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-process-docstring", _no_link_marks)
