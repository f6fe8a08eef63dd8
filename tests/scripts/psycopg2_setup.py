"""How the psycopg2 backend starts: wait callbacks, and psycopg 3 installed beside psycopg2.

Usage: python psycopg2_setup.py SCENARIO '{"json": "arguments"}', like green.py, but each
scenario patches (or not) itself: what is tested is what happens before and while patching.
"""

import json
import sys

SCENARIOS = {}


def scenario(func):
    SCENARIOS[func.__name__] = func
    return func


def patch(runtime, eventlet_psycopg=True):
    if runtime == "gevent":
        from gevent import monkey

        monkey.patch_all()
    else:
        import warnings

        # Only eventlet's own deprecation notice is let through (the script runs with -W error).
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
        import eventlet

        # Unless told not to, eventlet installs a wait callback of its own in psycopg2.
        # (psycopg=True would patch nothing else: eventlet patches only what is named True.)
        if eventlet_psycopg:
            eventlet.monkey_patch()
        else:
            eventlet.monkey_patch(psycopg=False)


def setup_django(args, **settings_):
    import django
    from django.conf import settings

    from support.databases import database_from_env

    settings.configure(
        DATABASES={
            "default": database_from_env(
                "django_db_geventpool.backends.postgresql_psycopg2",
                OPTIONS={"application_name": args["app"]},
            )
        },
        INSTALLED_APPS=args.get("apps", []),
        USE_TZ=True,
        **settings_,
    )
    django.setup()


def select_one():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


@scenario
def no_wait_callback(args):
    """Patched, but psycopg2 left blocking: the first connection says so."""
    import warnings

    patch(args["runtime"], eventlet_psycopg=args.get("eventlet_psycopg", False))
    extra = {}
    if "action" in args:
        extra["GEVENTPOOL_MISSING_WAIT_CALLBACK"] = args["action"]
    setup_django(args, **extra)
    from django.core.exceptions import ImproperlyConfigured

    from django_db_geventpool.backends.postgresql_psycopg2.wait_callback import (
        MissingWaitCallbackWarning,
    )

    report = {"error": None, "warnings": [], "selected": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MissingWaitCallbackWarning)
        try:
            report["selected"] = select_one()
        except ImproperlyConfigured as ex:
            report["error"] = str(ex)
    report["warnings"] = [str(w.message) for w in caught]
    import psycopg2.extensions

    callback = psycopg2.extensions.get_wait_callback()
    report["callback"] = callback.__module__ if callback is not None else None
    return report


@scenario
def helper(args):
    """patch_psycopg2() before and after patching, then a query through the pool."""
    from django_db_geventpool.backends.postgresql_psycopg2.wait_callback import patch_psycopg2

    report = {}
    try:
        patch_psycopg2()
    except RuntimeError as ex:
        report["unpatched"] = str(ex)
    patch(args["runtime"])
    report["patched"] = patch_psycopg2()
    import psycopg2.extensions

    report["callback"] = psycopg2.extensions.get_wait_callback().__module__
    setup_django(args)
    report["selected"] = select_one()
    return report


@scenario
def psycopg3_imported_first(args):
    """psycopg 3 installed and already imported: the ENGINE still runs on psycopg2."""
    import psycopg

    setup_django(args)
    selected = select_one()
    from django.db import connection
    from django.db.backends.postgresql import psycopg_any

    return {
        "selected": selected,
        "database_module": connection.Database.__name__,
        "django_is_psycopg3": psycopg_any.is_psycopg3,
        "psycopg_module_kept": sys.modules["psycopg"] is psycopg,
    }


@scenario
def psycopg3_loaded_by_contrib_postgres(args):
    """django.contrib.postgres loads Django's modules with psycopg 3 first: refused at once."""
    from django.core.exceptions import ImproperlyConfigured

    setup_django({**args, "apps": ["django.contrib.postgres"]})
    from django.db import connection

    try:
        connection.ensure_connection()
    except ImproperlyConfigured as ex:
        return {"error": str(ex)}
    return {"error": None}


def main():
    name, raw = sys.argv[1], sys.argv[2]
    print(json.dumps(SCENARIOS[name](json.loads(raw))))


if __name__ == "__main__":
    main()
