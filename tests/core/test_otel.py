"""The pools' statistics as OpenTelemetry metrics, read with the SDK's in-memory reader."""

from __future__ import annotations

import pytest

from django_db_geventpool.core import registry
from django_db_geventpool.core.statistics import DISTRIBUTIONS, STATISTICS


@pytest.fixture
def reader():
    # Installed by the sessions that run this (`tests`, `minimum`), beside the extra.
    pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed here")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from django_db_geventpool.core.otel import instrument

    reader = InMemoryMetricReader()
    stop = instrument(MeterProvider(metric_readers=[reader]))
    yield reader
    stop()


def points(reader):
    """{(instrument, pool, state): data point} of what the reader collected."""
    found = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = point.attributes
                    key = (
                        metric.name,
                        attributes["db.client.connection.pool.name"],
                        attributes.get("db.client.connection.state"),
                    )
                    found[key] = (metric, point)
    return found


def test_the_conventions_instruments_follow_the_pool(make_pool, reader):
    pool = make_pool(name="otel", max_size=3, max_idle_conns=2)
    registry.acquire("otel", "key", lambda: pool)
    try:
        held = pool.getconn()
        pool.putconn(pool.getconn())
        found = points(reader)
        pool.putconn(held)
    finally:
        registry.discard("otel")

    def value(name, state=None):
        return found[name, "otel", state][1].value

    assert value("db.client.connection.max") == 3
    assert value("db.client.connection.idle.max") == 2
    assert value("db.client.connection.count", "used") == 1
    assert value("db.client.connection.count", "idle") == 1
    assert value("db.client.connection.pending_requests") == 0
    assert value("db.client.connection.timeouts") == 0
    assert value("geventpool.checkouts") == 2
    assert value("geventpool.reclaimed") == 0
    # Every statistic is exported, under the table's name.
    for statistic in STATISTICS:
        name = statistic.otel or f"geventpool.{statistic.key}"
        assert (name, "otel", statistic.otel_state) in found, statistic
    # Durations: two connections opened, two checkouts, one connection given back so far.
    metric, point = found["db.client.connection.create_time", "otel", None]
    assert (metric.unit, point.count) == ("s", 2)
    assert found["db.client.connection.wait_time", "otel", None][1].count == 2
    assert found["db.client.connection.use_time", "otel", None][1].count == 1


def test_histograms_count_every_checkout(make_pool):
    pool = make_pool(max_size=1)
    for _ in range(3):
        pool.putconn(pool.getconn())
    histograms = pool.histograms()
    assert list(histograms) == [distribution.key for distribution in DISTRIBUTIONS]
    wait = histograms["wait_time"]
    # The first checkout opened a connection; the two others found it idle: 0 s.
    assert wait.count == 3
    assert wait.counts[0] >= 2
    assert histograms["use_time"].count == 3
    assert histograms["create_time"].count == 1
    assert 0 < histograms["create_time"].sum < 5
