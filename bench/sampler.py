"""Count server connections in pg_stat_activity, in a background thread."""

from __future__ import annotations

import threading
import time
from typing import Any

# A client's connections, by the application_name it gives them.
BY_APPLICATION_NAME = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
# Every client connection to the sampler's database but its own.
IN_DATABASE = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database()
      AND backend_type = 'client backend'
      AND pid <> pg_backend_pid()
"""


class ConnectionSampler:
    """Sample how many backends carry `application_name`, every `interval` seconds; with
    None, how many client backends the database has, besides the sampler's.

    Behind PgBouncer the server connections are PgBouncer's, shared by every client, and
    the application_name they show is whichever client last set one: where one setup at a
    time uses a database of its own (the demo), counting by database counts them all.

    It runs in an OS thread with its own connection, so the process being measured pays
    nothing for it; connections opened and closed between two samples can be missed, which
    is why the interval is short.
    """

    def __init__(
        self, conninfo: str, application_name: str | None, interval: float = 0.005
    ) -> None:
        self.conninfo = conninfo
        self.application_name = application_name
        self.interval = interval
        #: (time.monotonic(), connections) pairs.
        self.samples: list[tuple[float, int]] = []
        #: The pid of the server process that answers the sampler, once it connected.
        self.backend_pid: int | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._error: BaseException | None = None

    @property
    def latest(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    @property
    def peak(self) -> int:
        return max((count for _, count in self.samples), default=0)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        # Connected before the measured client starts, so that its first connections are
        # counted and its CPU time can leave the sampler's backend out.
        self._connected.wait(timeout=30)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError("sampling pg_stat_activity failed") from self._error

    def _run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                self.backend_pid = conn.info.backend_pid
                self._connected.set()
                name = self.application_name
                query, params = (IN_DATABASE, []) if name is None else (BY_APPLICATION_NAME, [name])
                while not self._stop.is_set():
                    row = conn.execute(query, params).fetchone()
                    count = row[0] if row else 0
                    self.samples.append((time.monotonic(), count))
                    self._stop.wait(self.interval)
        except BaseException as exc:
            self._error = exc
        finally:
            self._connected.set()
