"""The pool's settings and the installation in Django's system checks.

They run with ``manage.py check --database ALIAS`` and before ``migrate``.
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.validation import BaseDatabaseValidation

from django_db_geventpool.core import installation
from django_db_geventpool.core.options import PoolOptions


class DatabaseValidation(BaseDatabaseValidation):
    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        issues: list[checks.CheckMessage] = super().check(**kwargs)
        issues += installation.check(self.connection.alias)
        try:
            PoolOptions.from_settings(self.connection.alias, self.connection.settings_dict)
        except ImproperlyConfigured as ex:
            issues.append(checks.Error(str(ex), obj=self.connection.alias, id="geventpool.E001"))
        return issues
