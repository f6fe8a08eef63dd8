"""A PgBouncer in transaction mode on loopback, in front of the tests' PostgreSQL server.

It runs as the postgres OS user when the tests run as root (PgBouncer refuses root), from a
temporary directory removed by `stop()`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .cluster import ServerUnavailable, free_port, run_unprivileged
from .server import PgServer


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class PgBouncer:
    """`pgbouncer` with `pool_size` server connections per database and user."""

    def __init__(self, server: PgServer, pool_size: int, max_client_conn: int = 500) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(binary):
            raise ServerUnavailable(
                "pgbouncer is not installed: apt-get install pgbouncer (.ci/run does it)"
            )
        self.server = server
        self.host = "127.0.0.1"
        self.port = free_port()
        self.pool_size = pool_size
        self.run_as: list[str] = []
        owner = None
        parent = None
        if os.geteuid() == 0:
            # pgbouncer refuses root too.
            self.run_as, owner = run_unprivileged()
            parent = "/tmp"
        self.base = Path(tempfile.mkdtemp(prefix="geventpool-pgbouncer-", dir=parent))
        users = self.base / "userlist.txt"
        users.write_text(f"{_quoted(server.user)} {_quoted(server.password or '')}\n")
        config = self.base / "pgbouncer.ini"
        config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={server.host} port={server.port}",
                    "[pgbouncer]",
                    f"listen_addr = {self.host}",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {users}",
                    f"admin_users = {server.user}",
                    "pool_mode = transaction",
                    f"default_pool_size = {pool_size}",
                    "min_pool_size = 0",
                    "reserve_pool_size = 0",
                    f"max_client_conn = {max_client_conn}",
                    f"logfile = {self.base / 'pgbouncer.log'}",
                    f"pidfile = {self.base / 'pgbouncer.pid'}",
                    "",
                ]
            )
        )
        if owner is not None:
            for path in (self.base, users, config):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._proc = subprocess.Popen(
            [*self.run_as, binary, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        log = self.base / "pgbouncer.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise ServerUnavailable(f"pgbouncer did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)

    def _terminate(self) -> None:
        if self.run_as:
            # Signal pgbouncer itself: runuser passes a SIGTERM on to it but then waits two
            # seconds before it exits, where it exits as soon as pgbouncer has.
            try:
                os.kill(int((self.base / "pgbouncer.pid").read_text()), signal.SIGTERM)
                return
            except (OSError, ValueError):
                pass  # no pidfile (yet): through runuser, then
        self._proc.terminate()
