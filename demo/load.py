"""HTTP load from greenlets: each client sends GET requests one after another on a
keep-alive connection of its own, for a fixed time and at most a fixed number of requests.

The HTTP is geventhttpclient's, whose parser is in C: the load generator shares two cores
with the server it measures, and must cost as little as it can.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from http.client import HTTPException

import gevent
from geventhttpclient import HTTPClient


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


def _client(host: str, port: int, deadline: float, budget: list[int], out: LoadResult) -> None:
    # concurrency=1: one connection, kept alive from one request to the next, as a browser
    # or an upstream proxy keeps one.
    http = HTTPClient(host, port, concurrency=1, connection_timeout=30, network_timeout=30)
    try:
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            sent = time.monotonic()
            try:
                with http.get("/") as response:
                    response.read()
                    ok = response.status_code == 200
            except (OSError, HTTPException):
                ok = False
            if ok:
                out.latencies.append(time.monotonic() - sent)
            else:
                out.errors += 1
                # A failing server answers at once: don't spin on it.
                gevent.sleep(0.01)
    finally:
        http.close()


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
