"""The pools' statistics exposed to Prometheus, when prometheus_client is installed."""

from __future__ import annotations

from django_db_geventpool.core import registry


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
