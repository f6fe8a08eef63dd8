"""The pools' statistics as OpenTelemetry metrics, as the semantic conventions for database
client connection pools name them (``db.client.connection.*``).

opentelemetry-api is not a dependency of geventpool: an application that exports metrics
installs ``geventpool-core[opentelemetry]`` (with the SDK it configures) and calls, once::

    from django_db_geventpool.core.otel import instrument

    instrument()  # the global MeterProvider, or instrument(meter_provider=...)

Each pool is named by its database alias (``db.client.connection.pool.name``). Statistics the
conventions have no name for are exported as ``geventpool.<stats() key>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

try:
    from opentelemetry.metrics import (
        CallbackOptions,
        Histogram,
        MeterProvider,
        Observation,
        get_meter,
    )
except ImportError as ex:  # pragma: no cover - depends on the environment
    raise ImportError(
        "django_db_geventpool.core.otel needs opentelemetry-api:"
        " pip install 'geventpool-core[opentelemetry]'"
    ) from ex

from django_db_geventpool.core import registry
from django_db_geventpool.core.pool import ConnectionPool
from django_db_geventpool.core.statistics import (
    BUCKETS,
    DISTRIBUTIONS,
    STATISTICS,
    Kind,
    Statistic,
)
from django_db_geventpool.core.version import __version__

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"

# The conventions' units; geventpool's own statistics count connections or checkouts.
_UNITS = {
    "db.client.connection.pending_requests": "{request}",
    "db.client.connection.timeouts": "{timeout}",
}


def instrument(meter_provider: MeterProvider | None = None) -> Callable[[], None]:
    """Export the statistics of every pool of the process, now and to come.

    Return a function that stops recording durations (the instruments stay in the meter).
    """
    meter = get_meter("django_db_geventpool", __version__, meter_provider=meter_provider)
    instruments: dict[str, list[Statistic]] = {}
    for statistic in STATISTICS:
        instruments.setdefault(statistic.otel or f"geventpool.{statistic.key}", []).append(
            statistic
        )
    for name, statistics in instruments.items():
        first = statistics[0]
        unit = _UNITS.get(name, "s" if first.key.endswith("_seconds") else "{connection}")
        description = first.help if len(statistics) == 1 else "Connections by state."
        callback = _observe(statistics)
        if first.kind is Kind.COUNTER:
            meter.create_observable_counter(name, [callback], unit, description)
        elif first.otel is not None:
            # The conventions make the pool's gauges up-down counters.
            meter.create_observable_up_down_counter(name, [callback], unit, description)
        else:
            meter.create_observable_gauge(name, [callback], unit, description)
    histograms = {
        distribution.key: meter.create_histogram(
            distribution.otel,
            unit="s",
            description=distribution.help,
            explicit_bucket_boundaries_advisory=list(BUCKETS),
        )
        for distribution in DISTRIBUTIONS
    }
    listener = _Durations(histograms)
    unwatch = registry.watch(lambda alias, pool: pool.add_listener(listener))

    def stop() -> None:
        unwatch()
        for pool in registry.pools().values():
            pool.remove_listener(listener)

    return stop


def _observe(
    statistics: list[Statistic],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        for alias, pool in registry.pools().items():
            stats = pool.stats()
            for statistic in statistics:
                attributes = {POOL_NAME: alias}
                if statistic.otel_state is not None:
                    attributes[STATE] = statistic.otel_state
                yield Observation(stats[statistic.key], attributes)

    return observe


class _Durations:
    """Records each duration a pool records in the histogram of the same name."""

    def __init__(self, histograms: dict[str, Histogram]) -> None:
        self._histograms = histograms

    def record(self, pool: ConnectionPool[Any], key: str, seconds: float) -> None:
        self._histograms[key].record(seconds, {POOL_NAME: pool.name})
