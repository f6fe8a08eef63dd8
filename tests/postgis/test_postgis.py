"""GeoDjango on the pool with a real PostGIS: migrate, save, spatial lookups, under a herd.

The driver is the cell's (GEVENTPOOL_DRIVER, psycopg 3 by default): the one whose geventpool
package the environment has, which the backend must run on; each scenario reports the driver
Django loaded, and it is checked.
"""

from __future__ import annotations

import os

import pytest

from support.scenarios import run_scenario

DRIVER = os.environ.get("GEVENTPOOL_DRIVER", "psycopg3")
DRIVER_MODULES = {"psycopg3": {"psycopg"}, "psycopg2": {"psycopg2", "psycopg2cffi"}}
GEO = {
    "engine": "django_db_geventpool.backends.postgis",
    # django.contrib.gis brings the inspectdb that reads geometry columns.
    "apps": ["django.contrib.gis", "geoapp"],
}


@pytest.fixture
def env(pg, fresh_db, postgis_ready):
    return pg.env(fresh_db)


def geo_herd(env, **args):
    result = run_scenario("postgis.py", "geo_herd", env, **GEO, **args)
    assert result["cell"]["driver"] in DRIVER_MODULES[DRIVER]
    return result


def expected_visit(i):
    return {
        "location": [float(i), 10.0],
        "area_ok": True,
        "distance_lte": [f"p{i}"],
        "dwithin": [f"p{i}"],
        "contains": [f"p{i}"],
    }


@pytest.mark.smoke
def test_geodjango_round_trips_under_a_herd_stay_under_max_conns(env):
    result = geo_herd(env, options={"MAX_CONNS": 4}, greenlets=60)
    assert result["results"] == [expected_visit(i) for i in range(60)]
    assert result["overview"] == {"total": 60, "within_250_km": 3}
    # Read back by PostGIS's introspection, through the pool.
    assert result["inspectdb"][2:] == [
        "location = models.PointField(geography=True)",
        "area = models.PolygonField()",
    ]
    assert result["samples"] > 5
    assert 0 < result["sampled_peak"] <= 4
    stats = result["stats"]
    assert stats["opened"] <= 4
    # Nearly every checkout got a connection opened for someone else: geometries still
    # adapt on reused connections (the old pool's "cannot adapt type 'PostGISAdapter'").
    assert stats["checkouts"] >= 60
    assert stats["checkouts"] > 10 * stats["opened"]


def test_connections_opened_before_the_extension_existed_still_work(env):
    # Every connection of the pool is opened while the database has no postgis extension,
    # so none of them knew the geometry types; the migration creates the extension, and
    # they serve the herd.
    result = geo_herd(env, options={"MAX_CONNS": 3}, greenlets=30, warm=True)
    assert result["warmed"]["opened"] == 3
    assert result["results"] == [expected_visit(i) for i in range(30)]
    assert 0 < result["sampled_peak"] <= 3
    assert result["stats"]["opened"] == 3
