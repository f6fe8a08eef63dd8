"""The pools' statistics exposed to Prometheus, when prometheus_client is installed."""

from __future__ import annotations

from pathlib import Path

from django_db_geventpool.core import registry
from django_db_geventpool.core.statistics import DISTRIBUTIONS, STATISTICS, Kind, markdown_table


def test_collector_exposes_every_pool_by_alias(make_pool):
    import prometheus_client

    from django_db_geventpool.core.prometheus import PoolCollector

    pool = make_pool(name="reports", max_size=3)
    registry.acquire("reports", "key", lambda: pool)
    try:
        conn = pool.getconn()
        pool.putconn(pool.getconn())
        collectors = prometheus_client.CollectorRegistry()
        collectors.register(PoolCollector())
        text = prometheus_client.generate_latest(collectors).decode()
        pool.putconn(conn)
    finally:
        registry.discard("reports")
    assert 'geventpool_max_connections{alias="reports"} 3.0' in text
    assert 'geventpool_connections{alias="reports",state="in_use"} 1.0' in text
    assert 'geventpool_connections{alias="reports",state="idle"} 1.0' in text
    assert 'geventpool_waiting_clients{alias="reports"} 0.0' in text
    assert 'geventpool_checkouts_total{alias="reports"} 2.0' in text
    assert 'geventpool_connections_opened_total{alias="reports"} 2.0' in text
    # Every statistic, under the name the table gives it.
    for statistic in STATISTICS:
        name = statistic.metric + ("_total" if statistic.kind is Kind.COUNTER else "")
        labels = 'alias="reports"' + (f',state="{statistic.state}"' if statistic.state else "")
        assert f"{name}{{{labels}}} " in text, statistic
    for distribution in DISTRIBUTIONS:
        assert f'{distribution.metric}_count{{alias="reports"}} ' in text, distribution
        assert f'{distribution.metric}_bucket{{alias="reports",le="+Inf"}} ' in text
    assert 'geventpool_create_time_seconds_count{alias="reports"} 2.0' in text
    assert 'geventpool_wait_time_seconds_bucket{alias="reports",le="+Inf"} 2.0' in text


def test_stats_hold_what_the_table_declares(make_pool):
    pool = make_pool(max_size=1)
    assert list(pool.stats()) == [statistic.key for statistic in STATISTICS]


def test_the_docs_list_what_the_table_declares():
    page = (Path(__file__).parents[2] / "docs" / "observability.md").read_text()
    assert markdown_table() in page, (
        "docs/observability.md's table of statistics is out of date:"
        " python -m django_db_geventpool.core.statistics prints it"
    )
