"""The smallest Django project on the tests' server, for commands run in another virtualenv.

A settings module whose ENGINE comes from GEVENTPOOL_ENGINE, with the apps every project
`startproject` makes has models of (Django loads the default database's backend while it
defines them, as in a real project), and a script that runs one query through it and names
the wrapper class that ran it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .venvs import Venv

SETTINGS = """
import os

SECRET_KEY = "not-secret"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
DATABASES = {
    "default": {
        "ENGINE": os.environ["GEVENTPOOL_ENGINE"],
        "NAME": os.environ["PGDATABASE"],
        "USER": os.environ["PGUSER"],
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ["PGPORT"],
        "CONN_MAX_AGE": 0,
    }
}
"""
QUERY = """
import django

django.setup()
from django.db import connections

with connections["default"].cursor() as cursor:
    cursor.execute("SELECT 1")
    print("selected", cursor.fetchone()[0], "through", type(connections["default"]).__module__)
"""


class Project:
    """The project in `!folder`, on the server the PG* variables of `!server_env` name."""

    def __init__(self, folder: Path, server_env: dict[str, str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "projectsettings.py").write_text(SETTINGS)
        (folder / "query.py").write_text(QUERY)
        self.folder = folder
        self.server_env = server_env

    def env(self, engine: str) -> dict[str, str]:
        return {
            **self.server_env,
            "GEVENTPOOL_ENGINE": engine,
            "DJANGO_SETTINGS_MODULE": "projectsettings",
            "PYTHONPATH": str(self.folder),
        }

    def check(self, venv: Venv, engine: str, *options: str) -> subprocess.CompletedProcess[str]:
        """``manage.py check`` with `!options`, output in `stdout`."""
        return venv.run(["python", "-m", "django", "check", *options], env=self.env(engine))

    def query(self, venv: Venv, engine: str) -> subprocess.CompletedProcess[str]:
        """One query through `!engine`; on success it prints "selected 1 through MODULE"."""
        return venv.run(["python", str(self.folder / "query.py")], env=self.env(engine))
