"""Start the demo site under gunicorn's gevent workers, and stop it for sure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Gunicorn:
    """A gunicorn master with `workers` gevent worker processes, bound to 127.0.0.1, whose
    output is appended to `log`."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.log = log
        command = [
            sys.executable,
            *("-m", "gunicorn", "demoproject.wsgi"),
            *("--chdir", str(HERE), "--bind", f"127.0.0.1:{self.port}"),
            *("--worker-class", "gevent", "--workers", str(workers)),
            # Above the number of clients: gunicorn must not be what limits them.
            *("--worker-connections", "2000", "--keep-alive", "30"),
            *("--log-level", "warning"),
        ]
        # To a file: the demo's output is its progress and its report, and what gunicorn says
        # as it stops (a worker's socket closed under a request) would break into them.
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as output:
            # A session of its own: Ctrl-C reaches this process, which then stops gunicorn in
            # order, rather than gunicorn and its workers racing the cleanup below.
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with code {self.process.returncode}:\n{self._log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(
            f"gunicorn did not listen on port {self.port} in {timeout} s:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self, graceful: bool = True) -> None:
        """SIGTERM, which lets the workers finish their requests, or SIGQUIT, which does not;
        then SIGKILL for the whole group if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM if graceful else signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
