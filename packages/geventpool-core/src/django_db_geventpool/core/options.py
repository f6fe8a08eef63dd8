"""The pool's settings, read from a database's ``OPTIONS`` and checked."""

from __future__ import annotations

import dataclasses
import difflib
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_db_geventpool.core.pool import (
    DEFAULT_MAX_IDLE_TIME,
    DEFAULT_MAX_LIFETIME,
    DEFAULT_MAX_SIZE,
    DEFAULT_PING_AFTER,
    DEFAULT_TIMEOUT,
)

#: The ``OPTIONS`` keys that belong to the pool, not to the driver.
POOL_OPTIONS = (
    "MAX_CONNS",
    "REUSE_CONNS",
    "CHECKOUT_TIMEOUT",
    "PING_AFTER",
    "MAX_LIFETIME",
    "MAX_IDLE_TIME",
    "RESET_QUERY",
    "LEAK_TIMEOUT",
)

#: The longest duration the runtimes' timers take (about 292 years on 64-bit Linux).
MAX_SECONDS = threading.TIMEOUT_MAX

# What each duration means when set to None.
_NONE_MEANS = {
    "CHECKOUT_TIMEOUT": "to wait forever",
    "PING_AFTER": "to never ping",
    "MAX_LIFETIME": "to keep connections for ever",
    "MAX_IDLE_TIME": "to keep idle connections for ever",
    "LEAK_TIMEOUT": "to turn leak detection off",
}


@dataclass(frozen=True)
class PoolOptions:
    """The pool's settings, under the names `ConnectionPool` takes them by."""

    #: MAX_CONNS
    max_size: int = DEFAULT_MAX_SIZE
    #: REUSE_CONNS
    max_idle_conns: int = DEFAULT_MAX_SIZE
    #: CHECKOUT_TIMEOUT
    timeout: float | None = DEFAULT_TIMEOUT
    #: libpq's ``connect_timeout``, which the pool enforces too.
    connect_timeout: float | None = None
    #: PING_AFTER, MAX_LIFETIME, MAX_IDLE_TIME, RESET_QUERY, LEAK_TIMEOUT
    ping_after: float | None = DEFAULT_PING_AFTER
    max_lifetime: float | None = DEFAULT_MAX_LIFETIME
    max_idle_time: float | None = DEFAULT_MAX_IDLE_TIME
    reset_query: str | None = None
    leak_timeout: float | None = None

    def pool_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `ConnectionPool` these settings give."""
        return dataclasses.asdict(self)

    @classmethod
    def from_settings(cls, alias: str, settings_dict: Mapping[str, Any]) -> PoolOptions:
        """Read and check the pool's settings of the database `!alias`.

        Raise `ImproperlyConfigured`, saying what to change, for anything the pool can't
        honour: it is better to refuse to start than to run with a setting ignored.
        """
        where = f"DATABASES[{alias!r}]"
        options: Mapping[str, Any] = settings_dict.get("OPTIONS") or {}
        _reject_typos(where, options)

        max_age = settings_dict.get("CONN_MAX_AGE", 0)
        if max_age != 0:
            raise ImproperlyConfigured(
                f"{where}['CONN_MAX_AGE'] is {max_age!r}, but the pool keeps connections"
                " open itself and needs every request to give its connection back:"
                f" set {where}['CONN_MAX_AGE'] = 0"
            )
        if options.get("pool"):
            raise ImproperlyConfigured(
                f"{where}['OPTIONS']['pool'] turns on Django's own connection pool, which"
                " can't run beside geventpool: remove it and size the pool with"
                f" {where}['OPTIONS']['MAX_CONNS']"
            )

        max_conns = _integer(where, options, "MAX_CONNS", DEFAULT_MAX_SIZE)
        if max_conns < 1:
            raise ImproperlyConfigured(
                f"{where}['OPTIONS']['MAX_CONNS'] is {max_conns}: it must be at least 1"
            )
        reuse_conns = _integer(where, options, "REUSE_CONNS", max_conns)
        if not 0 <= reuse_conns <= max_conns:
            raise ImproperlyConfigured(
                f"{where}['OPTIONS']['REUSE_CONNS'] is {reuse_conns}: it must be between 0"
                f" and MAX_CONNS ({max_conns}); it is how many idle connections to keep open"
            )
        reset_query = options.get("RESET_QUERY")
        if reset_query is not None and (
            not isinstance(reset_query, str) or not reset_query.strip()
        ):
            raise ImproperlyConfigured(
                f"{where}['OPTIONS']['RESET_QUERY'] is {reset_query!r}: it must be an SQL"
                " statement such as 'DISCARD ALL', or None"
            )
        return cls(
            max_size=max_conns,
            max_idle_conns=reuse_conns,
            timeout=_seconds(where, options, "CHECKOUT_TIMEOUT", DEFAULT_TIMEOUT),
            connect_timeout=_connect_timeout(where, options),
            ping_after=_seconds(where, options, "PING_AFTER", DEFAULT_PING_AFTER),
            max_lifetime=_seconds(where, options, "MAX_LIFETIME", DEFAULT_MAX_LIFETIME),
            max_idle_time=_seconds(where, options, "MAX_IDLE_TIME", DEFAULT_MAX_IDLE_TIME),
            reset_query=reset_query,
            leak_timeout=_seconds(where, options, "LEAK_TIMEOUT", None),
        )


def _seconds(
    where: str, options: Mapping[str, Any], key: str, default: float | None
) -> float | None:
    value = options.get(key, default)
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is None or not 0 <= seconds <= MAX_SECONDS:
        raise ImproperlyConfigured(
            f"{where}['OPTIONS'][{key!r}] is {value!r}: it must be a number of seconds"
            f" (0 or more, and finite), or None {_NONE_MEANS[key]}"
        )
    return seconds


def _finite(value: Any) -> float | None:
    """`!value` as a finite float, or None if it is no number, NaN, infinite, or too big."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _connect_timeout(where: str, options: Mapping[str, Any]) -> float | None:
    # libpq's own option, passed on to the driver as it is; the pool enforces it too, since
    # psycopg2's asynchronous connects (under psycogreen) ignore it.
    value = options.get("connect_timeout")
    if value is None:
        return None
    text = str(value).strip() if isinstance(value, (int, str)) else ""
    if isinstance(value, bool) or not text.lstrip("-").isdigit():
        raise ImproperlyConfigured(
            f"{where}['OPTIONS']['connect_timeout'] is {value!r}: libpq takes a whole"
            " number of seconds, e.g. 10 (0 waits for ever)"
        )
    seconds = int(text)
    if seconds <= 0:
        return None
    # libpq waits 2 s at least.
    return float(min(max(seconds, 2), MAX_SECONDS))


def _integer(where: str, options: Mapping[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        # Strings from the environment are the usual culprit: convert them where they
        # are read, so that a typo fails there.
        raise ImproperlyConfigured(
            f"{where}['OPTIONS'][{key!r}] is {value!r}: it must be an integer,"
            f" e.g. int(os.environ[...])"
        )
    return value


def _reject_typos(where: str, options: Mapping[str, Any]) -> None:
    # Driver options (libpq's and psycopg's) are lowercase: an unknown uppercase key is
    # almost certainly one of ours misspelt, which would otherwise reach the driver, and so
    # is a key in another case that reads like one of ours.
    for key in options:
        if not isinstance(key, str) or key in POOL_OPTIONS or key in DRIVER_OPTIONS:
            continue
        ours = key.upper()
        if ours in POOL_OPTIONS:
            raise ImproperlyConfigured(
                f"{where}['OPTIONS'] has an unknown key {key!r}: did you mean {ours!r}?"
                " The pool's settings are upper case"
            )
        close = difflib.get_close_matches(ours, POOL_OPTIONS, n=1, cutoff=_CUTOFF[key.isupper()])
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif key.isupper():
            hint = f"the pool knows {', '.join(POOL_OPTIONS)}"
        else:
            continue
        raise ImproperlyConfigured(f"{where}['OPTIONS'] has an unknown key {key!r}: {hint}")


#: OPTIONS keys of libpq, psycopg or Django that could pass for a misspelling of ours.
DRIVER_OPTIONS = frozenset({"connect_timeout"})
# How alike a key must be to one of ours to be refused as its misspelling: any uppercase key
# is ours, a lowercase one may well be the driver's.
_CUTOFF = {True: 0.6, False: 0.85}
