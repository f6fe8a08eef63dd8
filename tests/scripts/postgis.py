"""GeoDjango scenarios on the PostGIS backend, on the cell's tasks.

For tests/postgis/test_postgis.py: python postgis.py SCENARIO '{"json": "arguments"}' prints
one JSON line (harness.py). The arguments name the ENGINE
(``django_db_geventpool.backends.postgis``) and the apps (``["django.contrib.gis", "geoapp"]``).
"""

# First: the cell's runtime patches the process before anything imports a driver.
import cell

green = cell.patch()

from harness import Sampler, main, pool_stats, scenario, server_connections  # noqa: E402

# Place i stands at longitude i on the parallel LATITUDE: neighbours are about 110 km apart,
# far outside the radius each greenlet searches around its own place.
LATITUDE = 10.0
RADIUS_M = 5_000
HALF_SIDE = 0.1  # degrees: the half-side of the square area around each place


def place_geometries(i):
    from django.contrib.gis.geos import Point, Polygon

    x, y = float(i), LATITUDE
    location = Point(x, y, srid=4326)
    corners = [(x - HALF_SIDE, y - HALF_SIDE), (x + HALF_SIDE, y - HALF_SIDE)]
    corners += [(x + HALF_SIDE, y + HALF_SIDE), (x - HALF_SIDE, y + HALF_SIDE)]
    area = Polygon([*corners, corners[0]], srid=4326)
    return location, area


def migrate():
    from django.core.management import call_command

    from django_db_geventpool.utils import close_connection

    with close_connection():
        call_command("migrate", "geoapp", verbosity=0)


def warm_up(count, hold=0.05):
    """Open `count` pool connections at once, all idle afterwards."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    @close_connection
    def hold_one():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [hold])

    green.joinall([green.spawn(hold_one) for _ in range(count)])


def inspect_place_table():
    """The model lines `inspectdb` writes for the table, read back through the pool."""
    import io

    from django.core.management import call_command

    from django_db_geventpool.utils import close_connection

    out = io.StringIO()
    with close_connection():
        call_command("inspectdb", "geoapp_place", stdout=out)
    return [line.strip() for line in out.getvalue().splitlines() if "Field(" in line]


@scenario
def geo_herd(args):
    """Migrate, then many greenlets save a place each and run spatial queries around it.

    With "warm", the pool's connections are all opened before the migration creates the
    postgis extension, so none of them knew the geometry types when it was opened.
    """
    from django.contrib.gis.measure import D

    from django_db_geventpool.utils import close_connection
    from geoapp.models import Place

    if args.get("warm"):
        warm_up(args["options"]["MAX_CONNS"])
    warmed = pool_stats() if args.get("warm") else None
    migrate()

    @close_connection
    def visit(i):
        location, area = place_geometries(i)
        place = Place.objects.create(name=f"p{i}", location=location, area=area)
        loaded = Place.objects.get(pk=place.pk)
        near = (location, D(m=RADIUS_M))
        return {
            "location": list(loaded.location.coords),
            "area_ok": loaded.area.equals_exact(area, 1e-9),
            "distance_lte": sorted(
                Place.objects.filter(location__distance_lte=near).values_list("name", flat=True)
            ),
            "dwithin": sorted(
                Place.objects.filter(location__dwithin=near).values_list("name", flat=True)
            ),
            "contains": sorted(
                Place.objects.filter(area__contains=location).values_list("name", flat=True)
            ),
        }

    sampler = Sampler(args["app"])
    tasks = [green.spawn(visit, i) for i in range(args["greenlets"])]
    green.joinall(tasks)
    sampled = sampler.stop()

    @close_connection
    def overview():
        origin, _ = place_geometries(0)
        # Places 0, 1 and 2 lie within 250 km of place 0; place 3 is about 330 km away.
        return {
            "total": Place.objects.count(),
            "within_250_km": Place.objects.filter(
                location__distance_lte=(origin, D(km=250))
            ).count(),
        }

    return {
        "warmed": warmed,
        "inspectdb": inspect_place_table(),
        "results": [green.result(t) for t in tasks],
        "overview": green.result(green.spawn(overview)),
        "sampled_peak": sampled["peak"],
        "samples": sampled["samples"],
        "after": server_connections(args["app"]),
        "stats": pool_stats(),
    }


if __name__ == "__main__":
    main()
