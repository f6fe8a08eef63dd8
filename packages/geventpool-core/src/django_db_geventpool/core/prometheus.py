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
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as ex:  # pragma: no cover - depends on the environment
    raise ImportError(
        "django_db_geventpool.core.prometheus needs prometheus_client:"
        " pip install 'geventpool-core[prometheus]'"
    ) from ex

from django_db_geventpool.core import registry
from django_db_geventpool.core.statistics import DISTRIBUTIONS, STATISTICS, Kind


class PoolCollector:
    """Collect the statistics of every pool of the process, labelled by database alias.

    One metric per statistic of `STATISTICS`, except the connection gauges, which share
    ``geventpool_connections`` with a ``state`` label, and one histogram per distribution of
    `DISTRIBUTIONS`.
    """

    def collect(self) -> Iterator[Metric]:
        pools = registry.pools()
        stats = {alias: pool.stats() for alias, pool in pools.items()}
        histograms = {alias: pool.histograms() for alias, pool in pools.items()}
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for statistic in STATISTICS:
            family: CounterMetricFamily | GaugeMetricFamily | None = families.get(statistic.metric)
            if family is None:
                labels = ["alias"] if statistic.state is None else ["alias", "state"]
                if statistic.kind is Kind.COUNTER:
                    family = CounterMetricFamily(statistic.metric, statistic.help, labels=labels)
                elif statistic.state is None:
                    family = GaugeMetricFamily(statistic.metric, statistic.help, labels=labels)
                else:
                    family = GaugeMetricFamily(
                        statistic.metric, "Connections by state.", labels=labels
                    )
                families[statistic.metric] = family
            for alias, values in stats.items():
                label = [alias] if statistic.state is None else [alias, statistic.state]
                family.add_metric(label, values[statistic.key])
        yield from families.values()
        for distribution in DISTRIBUTIONS:
            histogram = HistogramMetricFamily(
                distribution.metric, distribution.help, labels=["alias"]
            )
            for alias, snapshots in histograms.items():
                snapshot = snapshots[distribution.key]
                cumulative = 0
                buckets = []
                for bound, count in zip(snapshot.bounds, snapshot.counts, strict=False):
                    cumulative += count
                    buckets.append((repr(bound), cumulative))
                buckets.append(("+Inf", snapshot.count))
                histogram.add_metric([alias], buckets, sum_value=snapshot.sum)
            yield histogram
