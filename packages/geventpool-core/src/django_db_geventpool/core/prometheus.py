"""The pools' statistics as Prometheus metrics.

prometheus_client is not a dependency of geventpool: this module is only imported by
applications that install it and register the collector::

    from prometheus_client import REGISTRY
    from django_db_geventpool.core.prometheus import PoolCollector

    REGISTRY.register(PoolCollector())
"""

from __future__ import annotations

from collections.abc import Iterator

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
except ImportError as ex:  # pragma: no cover - depends on the environment
    raise ImportError(
        "django_db_geventpool.core.prometheus needs prometheus_client:"
        " pip install 'geventpool-core[prometheus]'"
    ) from ex

from django_db_geventpool.core import registry

# stats() key -> (metric name, help); counters get Prometheus' _total suffix themselves.
_COUNTERS = {
    "checkouts": ("geventpool_checkouts", "Connections handed out."),
    "waits": ("geventpool_waits", "Checkouts that had to wait for a connection."),
    "timeouts": ("geventpool_timeouts", "Checkouts that gave up after CHECKOUT_TIMEOUT."),
    "opened": ("geventpool_connections_opened", "Connections opened."),
    "closed": ("geventpool_connections_closed", "Connections closed, for any reason."),
    "lost": ("geventpool_connections_lost", "Connections discarded as broken."),
    "retired": ("geventpool_connections_retired", "Connections closed for age or idleness."),
    "leaks": ("geventpool_leaks", "Connections reported held longer than LEAK_TIMEOUT."),
    "wait_seconds": ("geventpool_wait_seconds", "Time spent waiting for connections."),
}


class PoolCollector:
    """Collect the statistics of every pool of the process, labelled by database alias."""

    def collect(self) -> Iterator[Metric]:
        stats = {alias: pool.stats() for alias, pool in registry.pools().items()}
        size = GaugeMetricFamily(
            "geventpool_max_connections",
            "MAX_CONNS: the cap on open connections.",
            labels=["alias"],
        )
        conns = GaugeMetricFamily(
            "geventpool_connections", "Open connections by state.", labels=["alias", "state"]
        )
        waiting = GaugeMetricFamily(
            "geventpool_waiting_clients", "Clients waiting for a connection.", labels=["alias"]
        )
        for alias, values in stats.items():
            size.add_metric([alias], values["max"])
            conns.add_metric([alias, "idle"], values["idle"])
            conns.add_metric([alias, "in_use"], values["in_use"])
            waiting.add_metric([alias], values["waiting"])
        yield from (size, conns, waiting)
        for key, (name, documentation) in _COUNTERS.items():
            counter = CounterMetricFamily(name, documentation, labels=["alias"])
            for alias, values in stats.items():
                counter.add_metric([alias], values[key])
            yield counter
