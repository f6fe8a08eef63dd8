"""Count the server connections to the demo's database in pg_stat_activity, in the background.

They are counted by database, not by application_name as the benchmark's sampler does: behind
PgBouncer the server connections are PgBouncer's, opened by it and shared by every client, and
the application_name they show is whichever a client last set on them, not the current one's.
The database is the demo's own (created for the run) and the legs run one after another, so
every client backend in it but the sampler's belongs to the leg being measured, whatever
opened it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

COUNT = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database()
      AND backend_type = 'client backend'
      AND pid <> pg_backend_pid()
"""


class ServerConnections:
    """Sample how many server connections the database has, every `interval` seconds.

    Connections opened and closed between two samples are missed, which is why the interval
    is short.
    """

    def __init__(self, conninfo: str, interval: float) -> None:
        self.conninfo = conninfo
        self.interval = interval
        #: (time.monotonic(), connections) pairs.
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._error: BaseException | None = None

    @property
    def latest(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def __enter__(self) -> ServerConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError("sampling pg_stat_activity failed") from self._error

    def _run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                while not self._stop.is_set():
                    row = conn.execute(COUNT).fetchone()
                    self.samples.append((time.monotonic(), row[0] if row else 0))
                    self._stop.wait(self.interval)
        except BaseException as exc:
            self._error = exc
