"""Whether the installed geventpool is whole: django-db-geventpool 4.x clobbers it.

django-db-geventpool installs the same package, ``django_db_geventpool``, and pip lets two
distributions write the same files without a word. Installed after geventpool, it replaces
``__init__.py``, ``utils.py`` and the backends' ``__init__.py`` (the backends' ``base`` is a
package here, which wins over its ``base.py``); installed before, its files are overwritten
by ours and `pip uninstall django-db-geventpool` later deletes them, ours now. `pip check`
sees nothing wrong either way.

Two things are checked, once per process, from the metadata of the installed distributions:
that django-db-geventpool is not installed, and that no file of ours listed in our RECORD is
missing. Files are not hashed: the first check already covers every overwrite pip can do,
and a hash would also refuse a file edited in place while debugging.
"""

from __future__ import annotations

import csv
import functools
import os
from importlib import metadata
from typing import TYPE_CHECKING, Any, NamedTuple

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from django_db_geventpool import engines

if TYPE_CHECKING:
    from django.db.backends.postgresql.base import DatabaseWrapper as _Base
else:
    _Base = object

#: The distribution geventpool succeeds, which installs the same import package.
OLD_DISTRIBUTION = "django-db-geventpool"
#: Ours, the core first: the recovery command reinstalls every one that is installed.
DISTRIBUTIONS = ("geventpool-core", *dict.fromkeys(engines.ENGINES.values()))
PACKAGE = "django_db_geventpool"

OLD_INSTALLED = "geventpool.E002"
FILES_MISSING = "geventpool.E003"


class Problem(NamedTuple):
    """What is wrong with the installation, as a system check id and a message."""

    id: str
    message: str


@functools.cache
def problems() -> tuple[Problem, ...]:
    """Return what is wrong with the installed distributions (nothing, normally).

    Computed once per process: a few metadata look-ups and a ``stat()`` per file.
    """
    ours = _installed(DISTRIBUTIONS)
    old = _installed((OLD_DISTRIBUTION,))
    if old:
        # Whichever order they came in, the recovery is the same, and it also brings back
        # any file of ours that is missing.
        return (
            Problem(
                OLD_INSTALLED,
                f"{OLD_DISTRIBUTION} {old[0].version} is installed beside {_names(ours)}:"
                f" both install the package {PACKAGE}, so the one installed last has"
                " replaced files of the other, and uninstalling"
                f" {OLD_DISTRIBUTION} later deletes files that geventpool needs."
                f" geventpool replaces {OLD_DISTRIBUTION}: run {recovery(ours, old=True)}",
            ),
        )
    missing = [path for dist in ours for path in _missing_files(dist)]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return (
            Problem(
                FILES_MISSING,
                f"files of {_names(ours)} are missing ({', '.join(missing[:3])}{more}),"
                f" most likely deleted by `pip uninstall {OLD_DISTRIBUTION}`, which removes"
                f" the files the two packages share: run {recovery(ours, old=False)}",
            ),
        )
    return ()


def recovery(ours: list[metadata.Distribution], old: bool) -> str:
    """The commands that make the installation whole again."""
    commands = [f"`pip uninstall --yes {OLD_DISTRIBUTION}`"] if old else []
    if ours:
        # Every one of ours, the core included: it owns __init__.py and utils.py, the files
        # the two packages share. --no-deps: only our files need writing again; without it
        # pip would reinstall Django, the driver and the runtime too, and may upgrade them.
        pins = " ".join(f"{dist.metadata['Name']}=={dist.version}" for dist in ours)
        commands.append(f"`pip install --force-reinstall --no-deps {pins}`")
    return ", then ".join(commands)


def ensure_whole() -> None:
    """Raise `ImproperlyConfigured` with the first problem found, if any."""
    found = problems()
    if found:
        raise ImproperlyConfigured(found[0].message)


def check(alias: str) -> list[checks.CheckMessage]:
    """The problems as system check errors about the database `!alias`."""
    return [checks.Error(problem.message, obj=alias, id=problem.id) for problem in problems()]


class InstallationCheckMixin(_Base):
    """Refuse to connect while the installation is broken.

    First in a backend's ``DatabaseWrapper`` bases: `manage.py check` (and so `runserver`
    and `migrate`) reports the problem as a system check error, since the backend still
    imports; anything that connects gets `ImproperlyConfigured` saying how to recover.
    """

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        ensure_whole()
        return super().get_new_connection(conn_params)


def _installed(names: tuple[str, ...]) -> list[metadata.Distribution]:
    found = []
    for name in names:
        try:
            found.append(metadata.distribution(name))
        except metadata.PackageNotFoundError:
            continue
    return found


def _names(dists: list[metadata.Distribution]) -> str:
    return ", ".join(f"{dist.metadata['Name']} {dist.version}" for dist in dists) or "geventpool"


def _missing_files(dist: metadata.Distribution) -> list[str]:
    # RECORD read directly: `Distribution.files` leaves out the files that are missing.
    # Entries without a hash are the bytecode pip compiled and the RECORD itself. An
    # editable install lists no file of the package: there is nothing to miss.
    record = dist.read_text("RECORD") or ""
    return [
        path
        for path, digest, *_ in csv.reader(record.splitlines())
        if digest
        and path.startswith(PACKAGE + "/")
        and not os.path.exists(str(dist.locate_file(path)))
    ]
