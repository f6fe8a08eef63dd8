"""The test cell a scenario script runs in: the runtime that patches it and the driver it uses.

``GEVENTPOOL_RUNTIME`` is ``gevent`` (the default), ``eventlet`` or ``threads`` (nothing
patched: OS threads); ``GEVENTPOOL_DRIVER`` is ``psycopg3`` (the default) or ``psycopg2``. A
script calls `patch()` before it imports anything else, then spawns, joins, cuts and kills
its tasks through what it returns (also `cell.green`), whichever runtime it is.
"""

import contextlib
import ctypes
import os
import threading
import time
import warnings

RUNTIME = os.environ.get("GEVENTPOOL_RUNTIME", "gevent")
DRIVER = os.environ.get("GEVENTPOOL_DRIVER", "psycopg3")
ENGINES = {
    "psycopg3": "django_db_geventpool.backends.postgresql_psycopg3",
    "psycopg2": "django_db_geventpool.backends.postgresql_psycopg2",
}
ENGINE = ENGINES[DRIVER]

green = None


def patch():
    """Monkey-patch with the cell's runtime and make its driver cooperate, as an app must.

    Return the runtime's tasks and timeouts (`green`); a second call only returns them.
    """
    global green
    if green is not None:
        return green
    if RUNTIME == "threads":
        green = _Threads()
        return green
    if RUNTIME == "gevent":
        from gevent import monkey

        monkey.patch_all()
        green = _Gevent()
    elif RUNTIME == "eventlet":
        # eventlet warns on import that it is deprecated. Only that warning is let through:
        # the scripts run with -W error, and any other warning still fails the test.
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
        import eventlet

        eventlet.monkey_patch()
        green = _Eventlet()
    else:
        raise SystemExit(
            f"GEVENTPOOL_RUNTIME is {RUNTIME!r}: use 'gevent', 'eventlet' or 'threads'"
        )

    if DRIVER == "psycopg2":
        from django_db_geventpool.backends.postgresql_psycopg2.wait_callback import patch_psycopg2

        patch_psycopg2()
    return green


def observer():
    """A connection outside the pool, in autocommit, on the cell's driver (PG* variables)."""
    if DRIVER == "psycopg3":
        import psycopg

        return psycopg.connect(autocommit=True, application_name="observer")
    import psycopg2

    conn = psycopg2.connect("application_name=observer")
    conn.autocommit = True
    return conn


def query_one(conn, sql, params=()):
    """The first column of the first row of `sql`, on a driver connection."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]
    finally:
        cursor.close()


class _Gevent:
    name = "gevent"

    def __init__(self):
        import gevent

        self._gevent = gevent
        self.Timeout = gevent.Timeout
        self.sleep = gevent.sleep

    def spawn(self, func, *args):
        return self._gevent.spawn(func, *args)

    def result(self, task):
        return task.get()

    def joinall(self, tasks, timeout=None):
        self._gevent.joinall(tasks, raise_error=True, timeout=timeout)

    def wait(self, tasks, timeout):
        """Wait for `tasks` to end, at most `timeout` seconds; return whether they all did."""
        self._gevent.joinall(tasks, timeout=timeout)
        return all(task.dead for task in tasks)

    def kill(self, task):
        task.kill(block=True)


class _Eventlet:
    name = "eventlet"

    def __init__(self):
        import eventlet

        self._eventlet = eventlet
        self.Timeout = eventlet.Timeout
        self.sleep = eventlet.sleep

    def spawn(self, func, *args):
        return self._eventlet.spawn(func, *args)

    def result(self, task):
        return task.wait()

    def joinall(self, tasks, timeout=None):
        with self._eventlet.Timeout(timeout):
            for task in tasks:
                task.wait()

    def wait(self, tasks, timeout):
        with self._eventlet.Timeout(timeout, False):
            for task in tasks:
                with contextlib.suppress(Exception):
                    task.wait()
        return all(task.dead for task in tasks)

    def kill(self, task):
        from greenlet import GreenletExit

        task.kill()
        with contextlib.suppress(GreenletExit):
            task.wait()


class _Threads:
    """OS threads, cut the only way a thread can be: an exception raised into it
    asynchronously (PyThreadState_SetAsyncExc), which lands at its next bytecode, that is
    at once in Python code and as soon as a blocking C call returns."""

    name = "threads"
    sleep = staticmethod(time.sleep)

    class Timeout(BaseException):
        """Raised into the thread that entered the block, after `seconds`."""

        def __init__(self, seconds=None):
            super().__init__(seconds)
            self.seconds = seconds
            # A class of its own: only a type can be raised asynchronously, and `except
            # timeout` must catch this one, not another.
            self.raised = type("Timeout", (_Threads.Timeout,), {})
            self._lock = threading.Lock()
            self._active = False
            self._timer = None

        def __enter__(self):
            if self.seconds is None:
                return self
            target = threading.get_ident()
            self._active = True
            self._timer = threading.Timer(self.seconds, self._fire, (target,))
            self._timer.daemon = True
            self._timer.start()
            return self

        def _fire(self, target):
            with self._lock:
                if self._active:
                    _raise_in(target, self.raised)

        def __exit__(self, *exc):
            if self._timer is not None:
                with self._lock:
                    self._active = False
                    self._timer.cancel()
                    # Fired but not yet raised: it must not land after the block.
                    _raise_in(threading.get_ident(), None)
            return False

    def spawn(self, func, *args):
        task = _Task(func, args)
        task.start()
        return task

    def result(self, task):
        task.join()
        if task.error is not None:
            raise task.error
        return task.value

    def joinall(self, tasks, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        for task in tasks:
            task.join(None if deadline is None else max(deadline - time.monotonic(), 0))
        for task in tasks:
            if task.error is not None:
                raise task.error

    def wait(self, tasks, timeout):
        deadline = time.monotonic() + timeout
        for task in tasks:
            task.join(max(deadline - time.monotonic(), 0))
        return not any(task.is_alive() for task in tasks)

    def kill(self, task):
        while task.is_alive():
            _raise_in(task.ident, Killed)
            task.join(0.05)


class Killed(BaseException):
    """What kills a thread, as GreenletExit kills a greenlet."""


class _Task(threading.Thread):
    def __init__(self, func, args):
        super().__init__(daemon=True)
        self._func = func
        self._args = args
        self.value = None
        self.error = None

    def run(self):
        try:
            self.value = self._func(*self._args)
        except Killed:
            pass
        except BaseException as ex:
            self.error = ex


def _raise_in(ident, exc_type):
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc_type) if exc_type else None
    )
