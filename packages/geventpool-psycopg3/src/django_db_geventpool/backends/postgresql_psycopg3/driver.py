"""psycopg 3, loaded with a message that says which extra to install when it can't be."""

from __future__ import annotations

from types import ModuleType

from django.core.exceptions import ImproperlyConfigured

ENGINE = "django_db_geventpool.backends.postgresql_psycopg3"
DISTRIBUTION = "geventpool-psycopg3"


def load() -> ModuleType:
    """Return the ``psycopg`` module; raise `ImproperlyConfigured` if it can't be imported.

    geventpool-psycopg3 requires plain psycopg and leaves its build to the application: with
    neither ``[binary]`` nor ``[c]`` installed, psycopg needs libpq on the machine, and
    raises "no pq wrapper available" without one. ``PSYCOPG_IMPL`` can also ask for a build
    that is not installed.
    """
    try:
        import psycopg
    except ImportError as ex:
        raise ImproperlyConfigured(
            f"{ENGINE} can't import psycopg 3: {ex}\n"
            f'`pip install "{DISTRIBUTION}[binary]"` installs psycopg with libpq inside, where'
            f' psycopg publishes such a build; `pip install "{DISTRIBUTION}[c]"` builds it'
            " against this machine's libpq; plain psycopg needs libpq installed (Debian and"
            " Ubuntu: apt-get install libpq5)"
        ) from ex
    module: ModuleType = psycopg
    return module
