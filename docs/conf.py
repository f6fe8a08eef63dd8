"""Sphinx configuration: the pages are MyST Markdown; the API reference comes from docstrings.

Built by `./noxw -s docs`, warnings as errors.
"""

from __future__ import annotations

import re
from pathlib import Path

from django_db_geventpool.core.version import __version__

project = "geventpool"
author = "geventpool contributors"
copyright = "geventpool contributors"
release = __version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Links to a heading of another page: [text](page.md#heading).
myst_heading_anchors = 3
# A link to a page or heading that doesn't exist is a warning (myst.xref_missing), which -W
# makes an error. `nitpicky` stays off: the type hints name typing variables, private
# classes and the standard library's and other packages' types, which only intersphinx
# (so the network, at every build) could resolve.
# The docstrings cite names in backquotes, `!name` where no link is meant (psycopg's style).
default_role = "code"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}

html_theme = "furo"
html_title = f"geventpool {release}"


def _no_link_marks(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    # `!name` in a docstring means "a name, not a link" (psycopg's habit): shown as `name`.
    lines[:] = [line.replace("`!", "`") for line in lines]


# The README links to the published pages, as it must on GitHub and PyPI; included in the
# index, those links become links to the pages of this build, which Sphinx then checks.
_PUBLISHED = re.compile(
    r"\]\(https://geventpool\.readthedocs\.io/en/latest/([\w/-]+)\.html(#[\w-]+)?\)"
)


def _readme_for_the_index(app, path, docname, content):  # type: ignore[no-untyped-def]
    if Path(path).name != "README.md":
        return
    # docs/..., as a link from the README to a file of the tree; the include's
    # :relative-docs: makes it relative to the index.
    content[0] = _PUBLISHED.sub(lambda m: f"](docs/{m[1]}.md{m[2] or ''})", content[0])


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-process-docstring", _no_link_marks)
    app.connect("include-read", _readme_for_the_index)
