"""A real Celery worker with the gevent pool: tasks that use the ORM give their connections back.

Measured from the server: the worker's sessions in pg_stat_activity never exceed MAX_CONNS and
are all idle at the end, and the pool, asked by one last task, has only that task's
connection in use. A control run without any recipe shows what the pool's safety net does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
SCRIPTS = TESTS / "scripts"
TASKS = 200
MAX_CONNS = 10
CONCURRENCY = 50

pytestmark = pytest.mark.usefixtures("celery_installed")


def _environment(pg, dbname, folder, recipe, options):
    return {
        **os.environ,
        **pg.env(dbname),
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "GEVENTPOOL_APP": f"celery-{recipe}-{os.getpid()}",
        "GEVENTPOOL_OPTIONS": json.dumps(options),
        "GEVENTPOOL_CELERY_RECIPE": recipe,
        "GEVENTPOOL_CELERY_DIR": str(folder),
        "PYTHONPATH": os.pathsep.join([str(SCRIPTS), str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }


def _run(env, *args):
    subprocess.run([sys.executable, *args], env=env, check=True, timeout=60)


def _queue_tasks(env):
    _run(env, "-m", "django", "migrate", "testapp", "--noinput", "-v", "0")
    _run(env, str(SCRIPTS / "celeryapp.py"), "send", str(TASKS))


@contextlib.contextmanager
def _worker(env, log: Path) -> Iterator[None]:
    # `python -m celery ... -P gevent` monkey-patches before anything else is imported.
    command = [sys.executable, "-m", "celery", "-A", "celeryapp", "worker", "-P", "gevent"]
    command += ["-c", str(CONCURRENCY), "-l", "WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log.open("w") as out:
        worker = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _sessions(pg, dbname, app):
    rows = pg.execute(
        "SELECT state, count(*) FROM pg_stat_activity WHERE application_name = %s GROUP BY 1",
        [app],
        dbname=dbname,
    )
    return dict(rows)


def _rows(pg, dbname):
    return pg.execute("SELECT count(*) FROM testapp_event", dbname=dbname)[0][0]


def _wait_for(predicate, seconds, what, log):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} within {seconds} s\n--- worker log\n{log.read_text()}", pytrace=False)


def _run_every_task(pg, fresh_db, env, log, seconds):
    """Wait (the worker running) until every task recorded its row; return the peak of the
    worker's server sessions meanwhile."""
    app = env["GEVENTPOOL_APP"]
    peak = 0

    def all_recorded():
        nonlocal peak
        peak = max(peak, sum(_sessions(pg, fresh_db, app).values()))
        return _rows(pg, fresh_db) == TASKS

    _wait_for(all_recorded, seconds, f"the worker did not run {TASKS} tasks", log)
    return peak


@pytest.mark.parametrize("recipe", ["fixup", "signal"])
def test_gevent_worker_tasks_give_their_connections_back(pg, fresh_db, tmp_path, recipe):
    env = _environment(pg, fresh_db, tmp_path, recipe, {"MAX_CONNS": MAX_CONNS})
    app = env["GEVENTPOOL_APP"]
    _queue_tasks(env)
    log = tmp_path / "worker.log"
    with _worker(env, log):
        peak = _run_every_task(pg, fresh_db, env, log, 90)
        _run(env, str(SCRIPTS / "celeryapp.py"), "report")
        stats_file = tmp_path / "stats.json"
        _wait_for(stats_file.exists, 30, "the report task did not run", log)
        time.sleep(0.2)  # the report task's own connection goes back too
        sessions = _sessions(pg, fresh_db, app)

    stats = json.loads(stats_file.read_text())
    # Shown with `pytest -s`: the figures the README quotes.
    print(f"\n{recipe}: {TASKS} tasks, -c {CONCURRENCY}, MAX_CONNS={MAX_CONNS}: peak {peak}")
    print(f"server sessions, at the end {sessions}; pool {stats}")
    # Only the report task held a connection: every record task had given its own back.
    assert stats["in_use"] == 1, stats
    assert stats["timeouts"] == 0
    assert stats["checkouts"] >= TASKS + 1
    assert stats["opened"] <= MAX_CONNS
    assert 0 < peak <= MAX_CONNS
    # What stays open is idle, not in a transaction.
    assert set(sessions) <= {"idle"}, sessions
    assert sum(sessions.values()) <= MAX_CONNS
    assert "Traceback" not in log.read_text(), log.read_text()


def test_without_a_recipe_ended_tasks_lose_their_connections_to_the_pool(pg, fresh_db, tmp_path):
    # The control: no fix-up, no handler. Each task's greenlet ends with its connection
    # still checked out; the pool takes those back (about twice a second), with a warning
    # each time, so every task runs, late, and the server never sees more than MAX_CONNS.
    env = _environment(pg, fresh_db, tmp_path, "none", {"MAX_CONNS": MAX_CONNS})
    _queue_tasks(env)
    log = tmp_path / "worker.log"
    with _worker(env, log):
        peak = _run_every_task(pg, fresh_db, env, log, 120)
    text = log.read_text()
    print(f"\nno recipe: {TASKS} tasks, MAX_CONNS={MAX_CONNS}: peak {peak}")
    assert 0 < peak <= MAX_CONNS
    reclaimed = text.count("took back a connection from a greenlet that ended")
    assert reclaimed >= TASKS - MAX_CONNS, text
