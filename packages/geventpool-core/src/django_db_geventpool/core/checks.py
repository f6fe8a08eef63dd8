"""The system checks of the databases on geventpool: their pool settings and the installation.

They read settings and package metadata, never a connection. So they are not among Django's
``database`` checks, which run only with ``--database``: they run with every ``manage.py
check``, and so before ``runserver``, ``migrate`` and ``test``.

Django knows of them once a geventpool backend is imported. It imports the default
database's while it defines the first model (``django.contrib.auth``'s, in any project
``startproject`` makes), before any check runs, and they then cover every database whose
ENGINE is geventpool's. Where the default database is on another backend, Django imports
ours only when it first uses that database: a bad setting is then refused on connecting,
in an `ImproperlyConfigured` with the same message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from django_db_geventpool import engines
from django_db_geventpool.core import installation
from django_db_geventpool.core.options import PoolOptions

BAD_SETTING = "geventpool.E001"
#: Selects these checks alone: ``manage.py check --tag geventpool``.
TAG = "geventpool"


def check_database(alias: str, settings_dict: Mapping[str, Any]) -> list[checks.CheckMessage]:
    """The errors in the installation and in the pool settings of the database `!alias`."""
    issues = installation.check(alias)
    try:
        PoolOptions.from_settings(alias, settings_dict)
    except ImproperlyConfigured as ex:
        issues.append(checks.Error(str(ex), obj=alias, id=BAD_SETTING))
    return issues


def check_databases(**kwargs: Any) -> list[checks.CheckMessage]:
    """Check every database whose ENGINE is one of geventpool's."""
    # Every one, whatever --database names: Django runs these checks either way.
    issues = []
    for alias, settings_dict in connections.settings.items():
        if settings_dict["ENGINE"].startswith(engines.PACKAGE + "."):
            issues += check_database(alias, settings_dict)
    return issues


checks.register(check_databases, TAG)
