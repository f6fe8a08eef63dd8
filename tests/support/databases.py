"""Django DATABASES entries for the server the tests run against, named by the PG* variables.

Scripts run in subprocesses get the server through the environment (`PgServer.env()`); this
turns it back into the settings Django wants.
"""

from __future__ import annotations

import os
from typing import Any


def database_from_env(engine: str, **extra: Any) -> dict[str, Any]:
    """A DATABASES entry on `!engine` for the PG* server, with CONN_MAX_AGE 0 and `!extra`."""
    return {
        "ENGINE": engine,
        "NAME": os.environ["PGDATABASE"],
        "USER": os.environ["PGUSER"],
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ["PGPORT"],
        "CONN_MAX_AGE": 0,
        **extra,
    }
