"""Settings are checked when the pool is made, with messages that say what to change."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_db_geventpool.core.options import PoolOptions

DURATIONS = ["CHECKOUT_TIMEOUT", "PING_AFTER", "MAX_LIFETIME", "MAX_IDLE_TIME", "LEAK_TIMEOUT"]


def options(**opts):
    return PoolOptions.from_settings("default", {"CONN_MAX_AGE": 0, "OPTIONS": opts})


def test_defaults_follow_the_old_package():
    assert options() == PoolOptions(
        max_size=4,
        max_idle_conns=4,
        timeout=30.0,
        connect_timeout=None,
        ping_after=10.0,
        max_lifetime=3600.0,
        max_idle_time=600.0,
        reset_query=None,
        leak_timeout=None,
    )


def test_every_duration_accepts_none():
    keys = ["CHECKOUT_TIMEOUT", "PING_AFTER", "MAX_LIFETIME", "MAX_IDLE_TIME", "LEAK_TIMEOUT"]
    parsed = options(**dict.fromkeys(keys))
    assert (
        parsed.timeout,
        parsed.ping_after,
        parsed.max_lifetime,
        parsed.max_idle_time,
        parsed.leak_timeout,
    ) == (None,) * 5


def test_reuse_conns_defaults_to_max_conns():
    assert options(MAX_CONNS=12).max_idle_conns == 12
    assert options(MAX_CONNS=12, REUSE_CONNS=0).max_idle_conns == 0


def test_checkout_timeout_none_waits_forever():
    assert options(CHECKOUT_TIMEOUT=None).timeout is None
    assert options(CHECKOUT_TIMEOUT=2).timeout == 2.0


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"MAX_CONNS": 0}, r"\['MAX_CONNS'\] is 0: it must be at least 1"),
        ({"MAX_CONNS": "20"}, r"\['MAX_CONNS'\] is '20': it must be an integer"),
        ({"MAX_CONNS": True}, r"it must be an integer"),
        ({"MAX_CONNS": 4, "REUSE_CONNS": 5}, r"between 0 and MAX_CONNS \(4\)"),
        ({"REUSE_CONNS": -1}, r"between 0 and MAX_CONNS"),
        ({"CHECKOUT_TIMEOUT": "30"}, r"number of seconds"),
        ({"CHECKOUT_TIMEOUT": -1}, r"number of seconds"),
        ({"MAX_CONN": 4}, r"unknown key 'MAX_CONN': did you mean 'MAX_CONNS'\?"),
        ({"REUSE_CONN": 4}, r"did you mean 'REUSE_CONNS'\?"),
        ({"POOL_SIZE": 4}, r"unknown key 'POOL_SIZE': the pool knows MAX_CONNS"),
        ({"pool": True}, r"Django's own connection pool"),
        ({"PING_AFTER": "10s"}, r"\['PING_AFTER'\] is '10s'.*or None to never ping"),
        ({"MAX_LIFETIME": -5}, r"or None to keep connections for ever"),
        ({"MAX_IDLE_TIME": [1]}, r"or None to keep idle connections for ever"),
        ({"LEAK_TIMEOUT": "60"}, r"or None to turn leak detection off"),
        ({"RESET_QUERY": ""}, r"\['RESET_QUERY'\] is '': it must be an SQL statement"),
        ({"RESET_QUERY": 1}, r"such as 'DISCARD ALL', or None"),
        ({"MAX_LIFETIMES": 5}, r"did you mean 'MAX_LIFETIME'\?"),
        # Numbers that are no durations: NaN would stall or abort the runtime's timers.
        *(
            (
                {key: value},
                rf"\['{key}'\] is {re.escape(repr(value))}: it must be a number of seconds",
            )
            for key in DURATIONS
            for value in (float("nan"), float("inf"), float("-inf"), 10**400, 1e300)
        ),
        # The pool's keys in another case would reach libpq as unknown options.
        ({"max_conns": 4}, r"unknown key 'max_conns': did you mean 'MAX_CONNS'\?"),
        ({"Max_Conns": 4}, r"unknown key 'Max_Conns': did you mean 'MAX_CONNS'\?"),
        ({"reuse_conns": 4}, r"did you mean 'REUSE_CONNS'\? The pool's settings are upper case"),
        ({"checkout_timeout": 4}, r"did you mean 'CHECKOUT_TIMEOUT'\?"),
        ({"max_con": 4}, r"unknown key 'max_con': did you mean 'MAX_CONNS'\?"),
        ({"Leak_Timeout": 4}, r"did you mean 'LEAK_TIMEOUT'\?"),
        ({"connect_timeout": "soon"}, r"\['connect_timeout'\] is 'soon': libpq takes a whole"),
        ({"connect_timeout": 2.5}, r"libpq takes a whole number of seconds"),
        ({"connect_timeout": True}, r"libpq takes a whole number of seconds"),
    ],
)
def test_bad_options_are_refused_with_the_fix(opts, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        options(**opts)


@pytest.mark.parametrize("max_age", [None, 60])
def test_persistent_connections_are_refused(max_age):
    with pytest.raises(
        ImproperlyConfigured, match=r"set DATABASES\['default'\]\['CONN_MAX_AGE'\] = 0"
    ):
        PoolOptions.from_settings("default", {"CONN_MAX_AGE": max_age, "OPTIONS": {}})


def test_connect_timeout_is_read_as_libpq_reads_it():
    assert options().connect_timeout is None
    assert options(connect_timeout=10).connect_timeout == 10.0
    assert options(connect_timeout="10").connect_timeout == 10.0
    # libpq: 0 or less waits for ever, and it waits 2 s at the least.
    assert options(connect_timeout=0).connect_timeout is None
    assert options(connect_timeout=1).connect_timeout == 2.0


def test_driver_options_pass_through():
    assert options(application_name="web", sslmode="prefer", MAX_CONNS=2).max_size == 2
    # libpq's, not a misspelling of CHECKOUT_TIMEOUT.
    assert options(connect_timeout=5, keepalives_idle=30, target_session_attrs="any")
