"""The pool's settings in Django's system checks (``manage.py check --database``)."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.validation import BaseDatabaseValidation

from django_db_geventpool.core.options import PoolOptions


class DatabaseValidation(BaseDatabaseValidation):
    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        issues: list[checks.CheckMessage] = super().check(**kwargs)
        try:
            PoolOptions.from_settings(self.connection.alias, self.connection.settings_dict)
        except ImproperlyConfigured as ex:
            issues.append(checks.Error(str(ex), obj=self.connection.alias, id="geventpool.E001"))
        return issues
