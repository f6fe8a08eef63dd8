"""A Celery app whose tasks use the ORM, for a real `celery worker -P gevent` in the tests.

The broker is kombu's filesystem transport in GEVENTPOOL_CELERY_DIR; there is no result
backend. GEVENTPOOL_CELERY_RECIPE picks how tasks give their connections back:

- ``fixup``: the usual Django project layout. DJANGO_SETTINGS_MODULE is set, so Celery's
  Django fix-up closes the task's connections after each task (with CONN_MAX_AGE = 0),
  which gives them back to the pool.
- ``signal``: Django configured by hand, so no fix-up: a ``task_postrun`` handler of ours
  does it.
- ``none``: Django configured by hand and no handler: the control, where connections leak.

`python celeryapp.py send N` queues N `record` tasks; `python celeryapp.py report` queues
a `report`, which writes the pool's statistics to stats.json.

With the psycopg2 ENGINE (GEVENTPOOL_ENGINE), the worker installs psycogreen's wait callback
when it starts, as the README tells psycopg2 users to.
"""

import json
import os
import sys
from pathlib import Path

from celery import Celery
from celery.signals import task_postrun, worker_init

RECIPE = os.environ.get("GEVENTPOOL_CELERY_RECIPE", "fixup")
FOLDER = Path(os.environ["GEVENTPOOL_CELERY_DIR"])

if RECIPE == "fixup":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
else:
    # Celery installs its Django fix-up only when this variable is set.
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)

app = Celery("celeryapp")
app.conf.update(
    broker_url="filesystem://",
    broker_transport_options={
        "data_folder_in": str(FOLDER / "queue"),
        "data_folder_out": str(FOLDER / "queue"),
        "processed_folder": str(FOLDER / "processed"),
        # Broadcasts (remote control, pidbox) go to a folder too: kombu's default is
        # "control" in the working directory.
        "control_folder": str(FOLDER / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    },
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)


def setup_django():
    import django
    from django.conf import settings

    if RECIPE != "fixup" and not settings.configured:
        import testproject.settings as project

        settings.configure(**{k: getattr(project, k) for k in dir(project) if k.isupper()})
    django.setup()


if os.environ.get("GEVENTPOOL_ENGINE", "").endswith("psycopg2"):

    @worker_init.connect
    def cooperate_psycopg2(**kwargs):
        # `-P gevent` patched the process before this module was imported.
        from django_db_geventpool.backends.postgresql_psycopg2.wait_callback import patch_psycopg2

        patch_psycopg2()


if RECIPE == "signal":

    @task_postrun.connect
    def give_connections_back(**kwargs):
        # Runs in the greenlet that ran the task: these are the task's connections.
        from django.db import connections

        connections.close_all()


@app.task(name="celeryapp.record")
def record(i):
    from django.db import connection
    from django.utils import timezone

    from testapp.models import Event

    Event.objects.create(name=f"task{i}", happened_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.02)")


@app.task(name="celeryapp.report")
def report():
    from django.db import connection

    # This task's own checkout is open: it counts one in_use.
    connection.ensure_connection()
    stats = connection.geventpool.stats()
    (FOLDER / "stats.json").write_text(json.dumps(stats))


if __name__ == "__main__":
    for folder in ("queue", "processed", "control"):
        (FOLDER / folder).mkdir(parents=True, exist_ok=True)
    if sys.argv[1] == "send":
        for i in range(int(sys.argv[2])):
            record.delay(i)
    else:
        report.delay()
else:
    setup_django()
