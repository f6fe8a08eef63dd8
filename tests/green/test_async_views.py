"""Async views beside sync views, served by gunicorn's gevent worker on the pool.

A small site runs under real gunicorn (``-k gevent``, one worker) on the cell's driver: an
``async def`` view that awaits the async ORM, and a sync view that queries, both holding
their connection for a short server-side sleep so that the requests contend for the pool.
Threads of the test process load it over HTTP while the server's sessions are counted.
Without the running loop kept per greenlet, the async view fails with
SynchronousOnlyOperation even alone, and so do most sync views served beside it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.scenarios import DRIVER, RUNTIME, run_in_cell
from support.server import PgServer

pytestmark = pytest.mark.skipif(
    RUNTIME != "gevent", reason="gunicorn's gevent worker: the gevent cells run it"
)

ENGINES = {
    "psycopg3": "django_db_geventpool.backends.postgresql_psycopg3",
    "psycopg2": "django_db_geventpool.backends.postgresql_psycopg2",
}
MAX_CONNS = 4
CLIENTS = 24
REQUESTS_PER_CLIENT = 30

SETTINGS = """
import os

SECRET_KEY = "not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "asyncsite.urls"
INSTALLED_APPS = ["asyncsite"]
MIDDLEWARE = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {
    "default": {
        "ENGINE": os.environ["GEVENTPOOL_ENGINE"],
        "NAME": os.environ["PGDATABASE"],
        "USER": os.environ["PGUSER"],
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ["PGPORT"],
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            "MAX_CONNS": int(os.environ["GEVENTPOOL_MAX_CONNS"]),
            "application_name": os.environ["GEVENTPOOL_APP"],
        },
    }
}
"""
MODELS = """
from django.db import models


class Item(models.Model):
    name = models.TextField()
"""
VIEWS = """
import asyncio
import json

import gevent

from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.http import HttpResponse

from asyncsite.models import Item


def hold(seconds=0.005):
    # Server time on the request's connection.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])


async def async_count(request):
    count = await Item.objects.acount()
    await sync_to_async(hold)()
    return HttpResponse(f"async {count}")


def sync_count(request):
    count = Item.objects.count()
    hold()
    return HttpResponse(f"sync {count}")


async def async_cut(request):
    # Cut inside the query, in the request's greenlet, where sync_to_async runs it.
    cut = await sync_to_async(cut_query)()
    # An asyncio timeout, in the loop's greenlet: asyncio's timers run on gevent's hub.
    try:
        await asyncio.wait_for(asyncio.sleep(1), 0.01)
    except asyncio.TimeoutError:
        return HttpResponse(f"{cut} cut")
    return HttpResponse("not cut")


def cut_query():
    # The connection first, so that the cut lands in the query and not in the wait for it.
    connection.ensure_connection()
    try:
        with gevent.Timeout(0.02):
            hold(seconds=5)
    except gevent.Timeout:
        return "cut"
    return "not"


def pool(request):
    # The pool's figures, read without taking a connection.
    return HttpResponse(json.dumps(connections["default"].geventpool.stats()))
"""
URLS = """
from django.urls import path

from asyncsite import views

urlpatterns = [
    path("async", views.async_count),
    path("sync", views.sync_count),
    path("cut", views.async_cut),
    path("pool", views.pool),
]
"""
WSGI = """
from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
"""
# The worker patches after post_fork; psycopg2 needs its wait callback once it has.
GUNICORN_CONF = """
import os


def post_fork(server, worker):
    if os.environ["GEVENTPOOL_ENGINE"].endswith("psycopg2"):
        from gevent import monkey

        monkey.patch_all()
        from django_db_geventpool.backends.postgresql_psycopg2.wait_callback import (
            patch_psycopg2,
        )

        patch_psycopg2()
"""


def write_site(folder: Path) -> None:
    package = folder / "asyncsite"
    package.mkdir(parents=True)
    files = {
        "__init__.py": "",
        "settings.py": SETTINGS,
        "models.py": MODELS,
        "views.py": VIEWS,
        "urls.py": URLS,
        "wsgi.py": WSGI,
    }
    for name, text in files.items():
        (package / name).write_text(textwrap.dedent(text).lstrip())
    (folder / "gunicorn.conf.py").write_text(GUNICORN_CONF.lstrip())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_listening(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, f"gunicorn exited:\n{log.read_text()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"gunicorn did not listen on {port}:\n{log.read_text()}")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:200]


class SessionSampler:
    """Counts the server sessions named `!app` in a thread, until stopped; keeps the peak."""

    def __init__(self, pg: PgServer, app: str) -> None:
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pg, app))
        self._thread.start()

    def _run(self, pg: PgServer, app: str) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, pg.sessions(app))
            self.samples += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_async_and_sync_views_all_succeed_under_gunicorn_gevent_within_the_cap(
    tmp_path: Path, pg: PgServer, fresh_db: str
) -> None:
    write_site(tmp_path)
    pg.execute("CREATE TABLE asyncsite_item (id serial PRIMARY KEY, name text)", dbname=fresh_db)
    pg.execute("INSERT INTO asyncsite_item (name) VALUES ('one'), ('two')", dbname=fresh_db)
    app = f"asyncsite-{os.getpid()}"
    port = free_port()
    env = {
        **os.environ,
        **pg.env(fresh_db),
        "DJANGO_SETTINGS_MODULE": "asyncsite.settings",
        "PYTHONPATH": str(tmp_path),
        "GEVENTPOOL_ENGINE": ENGINES[DRIVER],
        "GEVENTPOOL_MAX_CONNS": str(MAX_CONNS),
        "GEVENTPOOL_APP": app,
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "asyncsite.wsgi"),
                *("--config", str(tmp_path / "gunicorn.conf.py")),
                *("--worker-class", "gevent", "--workers", "1"),
                *("--bind", f"127.0.0.1:{port}", "--log-level", "warning"),
            ],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(port, server, log)
        base = f"http://127.0.0.1:{port}"

        alone = get(f"{base}/async")
        assert alone == (200, "async 2"), f"one async view, alone: {alone}\n{log.read_text()}"

        # Every tenth request cut short, the rest async and sync in turn.
        paths = [
            "cut" if n % 10 == 9 else "async" if (client + n) % 2 else "sync"
            for client in range(CLIENTS)
            for n in range(REQUESTS_PER_CLIENT)
        ]
        sampler = SessionSampler(pg, app)
        try:
            with ThreadPoolExecutor(CLIENTS) as clients:
                results = list(clients.map(lambda path: (path, get(f"{base}/{path}")), paths))
        finally:
            sampler.stop()

        failed = [(path, status, body) for path, (status, body) in results if status != 200]
        assert not failed, f"{len(failed)} of {len(results)} requests failed, first: {failed[0]}"
        expected = {"async": "async 2", "sync": "sync 2", "cut": "cut cut"}
        wrong = [(path, body) for path, (_, body) in results if body != expected[path]]
        assert not wrong, f"{len(wrong)} unexpected answers, first: {wrong[0]}"
        assert sampler.samples > 10, "the server's sessions were hardly sampled"
        assert 0 < sampler.peak <= MAX_CONNS, (
            f"the server had {sampler.peak} sessions of the site at once; MAX_CONNS is {MAX_CONNS}"
        )

        # A cut connection is closed after its query is cancelled, in the background.
        deadline = time.monotonic() + 10
        while True:
            status, body = get(f"{base}/pool")
            assert status == 200, body
            stats = json.loads(body)
            if stats["closing"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert stats["in_use"] == 0, f"connections still lent after every request ended: {stats}"
        assert stats["leaks"] == stats["reclaimed"] == 0, stats
        cuts = paths.count("cut")
        assert stats["lost"] == cuts, f"each of the {cuts} cut connections discarded: {stats}"
        assert stats["checkouts"] == len(results) + 1, (
            f"one checkout per request that queried ({len(results) + 1}), the pool says {stats}"
        )
        assert stats["open"] <= MAX_CONNS, stats
        # Each cut query's backend was stopped, not left sleeping for its 5 s.
        assert pg.sessions(app) <= MAX_CONNS
        running = pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND query LIKE 'SELECT pg_sleep(5%%' AND state = 'active'",
            [app],
        )[0][0]
        assert running == 0, f"{running} cut queries still running on the server"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert "Traceback" not in log.read_text(), log.read_text()


def test_the_first_async_request_may_load_the_backend_inside_its_running_loop(pg: PgServer) -> None:
    # No models: Django loads the backend only when the first async view queries.
    result = run_in_cell(
        "running_loops.py",
        "backend_loaded_inside_a_loop",
        pg.env(),
        apps=[],
        requests=10,
        options={"MAX_CONNS": 2},
    )
    assert result["backend_loaded_before"] is False, "the backend was loaded before the loop ran"
    assert result["errors"] == [], result["errors"]
    assert result["served"] == 21
    assert result["stats"]["in_use"] == 0, result["stats"]
