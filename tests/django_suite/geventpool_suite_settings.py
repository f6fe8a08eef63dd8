"""Settings for Django's own ``tests/runtests.py``, with the ENGINE chosen by the runner.

run.py puts this folder and tests/ on PYTHONPATH and passes
``--settings=geventpool_suite_settings``; the server comes from the PG* variables, the ENGINE
and its OPTIONS from the environment.
"""

import json
import os

from support.databases import database_from_env

ENGINE = os.environ["GEVENTPOOL_SUITE_ENGINE"]
OPTIONS = json.loads(os.environ.get("GEVENTPOOL_SUITE_OPTIONS", "{}"))
# Test databases get a per-run suffix: two runs may share one server.
SUFFIX = os.environ.get("GEVENTPOOL_SUITE_SUFFIX", "")


def _database(alias):
    return database_from_env(
        ENGINE, OPTIONS=dict(OPTIONS), TEST={"NAME": f"test_django_{alias}{SUFFIX}"}
    )


DATABASES = {"default": _database("default"), "other": _database("other")}

# What Django's own tests/test_sqlite.py sets, but for the databases.
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False

# Counts every outcome per test module and writes them where run.py reads them.
TEST_RUNNER = "geventpool_suite_runner.TallyRunner"
