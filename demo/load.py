"""HTTP load from greenlets: each client sends GET requests one after another on a
keep-alive connection, for a fixed time and at most a fixed number of requests.

Plain sockets and a minimal HTTP/1.1 reader rather than an HTTP library: the load generator
shares two cores with the server it measures, and must cost as little as it can.
"""

from __future__ import annotations

import socket
import statistics
import time
from dataclasses import dataclass, field

import gevent


@dataclass
class LoadResult:
    """What the clients saw."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    started: float = 0.0
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, p: int) -> float:
        """The `p`th percentile of the latencies, `p` from 1 to 99."""
        if len(self.latencies) < 2:
            # quantiles() wants two values at least.
            return self.latencies[0] if self.latencies else float("nan")
        # "inclusive": the latencies are every request of the run, the whole population and
        # not a sample of a larger one, so the 0th and 100th percentiles are the fastest and
        # the slowest request, and a percentile between two ranks is interpolated between
        # them (numpy's default, "linear"). "exclusive" would widen the range beyond what was
        # seen, which suits a sample only.
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]


class HttpError(Exception):
    """The server answered something other than 200, or closed the connection."""


def _read_response(sock: socket.socket, buffer: bytearray) -> None:
    """Read one response from `sock`; keep what follows it in `buffer`."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise HttpError("connection closed by the server")
        buffer += chunk
    head_end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:head_end]).decode("latin-1")
    status = head.split(" ", 2)[1]
    length = None
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    if length is None:
        raise HttpError("no Content-Length in the response")
    while len(buffer) < head_end + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise HttpError("connection closed by the server")
        buffer += chunk
    del buffer[: head_end + length]
    if status != "200":
        raise HttpError(f"HTTP {status}")


def _client(host: str, port: int, deadline: float, budget: list[int], out: LoadResult) -> None:
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    sock: socket.socket | None = None
    buffer = bytearray()
    while budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= 1
        sent = time.monotonic()
        try:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=30)
                buffer.clear()
            sock.sendall(request)
            _read_response(sock, buffer)
        except (OSError, HttpError, ValueError, IndexError):
            out.errors += 1
            if sock is not None:
                sock.close()
                sock = None
            # A failing server answers at once: don't spin on it.
            gevent.sleep(0.01)
            continue
        out.latencies.append(time.monotonic() - sent)
    if sock is not None:
        sock.close()


def run_load(
    host: str, port: int, clients: int, seconds: float, max_requests: int, out: LoadResult
) -> None:
    """Drive `clients` concurrent clients at http://host:port/ for `seconds`; fill `out`."""
    budget = [max_requests]  # shared by the clients: the run is bounded in count too
    out.started = time.monotonic()
    deadline = out.started + seconds
    greenlets = [gevent.spawn(_client, host, port, deadline, budget, out) for _ in range(clients)]
    try:
        gevent.joinall(greenlets, raise_error=True)
    finally:
        gevent.killall(greenlets)
    out.seconds = time.monotonic() - out.started
