"""The ENGINEs under ``django_db_geventpool.backends``, each with the distribution that has it.

Each driver distribution installs its ENGINEs into the shared package, so an ENGINE whose
distribution is missing is simply not there, and Django says only that it "isn't an
available database backend". `MissingEngineFinder`, which the package's ``__init__.py``
puts last on `sys.meta_path`, makes that import fail with the distribution to install.

Standard library only: ``__init__.py`` imports this before Django is set up, and may do
it before the process is monkey-patched.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

PACKAGE = "django_db_geventpool.backends"

#: Every ENGINE, by its name under `PACKAGE`, with the distribution that installs it.
ENGINES = {
    "postgresql_psycopg3": "geventpool-psycopg3",
    "postgresql_psycopg": "geventpool-psycopg3",
    "postgresql_psycopg2": "geventpool-psycopg2",
    "postgis": "geventpool-postgis",
}


class MissingEngineFinder:
    """Fail the import of an ENGINE no other finder found, naming what to install.

    It answers only for `PACKAGE` itself (the core installed without any driver
    distribution) and for the ENGINEs of `ENGINES`, and only after every other finder
    found nothing: installed ones, editable ones included, never reach it. A probe such
    as ``importlib.util.find_spec(ENGINE)`` gets the `ModuleNotFoundError` too, as it
    does when a parent package is missing.
    """

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname == PACKAGE:
            raise ModuleNotFoundError(
                f"{PACKAGE} comes with geventpool's driver distributions, and none is"
                f" installed: install the one of your ENGINE ({_choices()})",
                name=fullname,
            )
        package, _, engine = fullname.rpartition(".")
        distribution = ENGINES.get(engine) if package == PACKAGE else None
        if distribution is None:
            return None
        raise ModuleNotFoundError(
            f"{fullname} is in the {distribution} distribution, which isn't installed:"
            f" install it with `pip install {distribution}`",
            name=fullname,
        )


def _choices() -> str:
    engines: dict[str, list[str]] = {}
    for engine, distribution in ENGINES.items():
        engines.setdefault(distribution, []).append(engine)
    return "; ".join(
        f"`pip install {distribution}` for {' or '.join(names)}"
        for distribution, names in engines.items()
    )


FINDER = MissingEngineFinder()


def install_finder() -> None:
    """Put `FINDER` last on `sys.meta_path`, unless it is there already."""
    if FINDER not in sys.meta_path:
        sys.meta_path.append(FINDER)
