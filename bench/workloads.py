"""What one request does with the database, the same for every setup.

A workload runs on a DB-API cursor (Django's, or psycopg's for the row without Django), so
that each setup only decides how it gets the connection, opens the transaction and gives the
connection back. This module is plain Python: the workers import it in every virtualenv,
django-db-geventpool 4.0.8's included.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Rows of bench_accounts: enough that ten transactions at a time rarely wait on one
#: another's row lock, few enough that the table stays in shared buffers.
ACCOUNTS = 1_000

#: Run once on the benchmark's database ({dbname}, quoted) before any worker starts. The
#: server's time zone is often 'Etc/UTC', which Django with USE_TZ takes as other than
#: 'UTC' and corrects with a SET on every new connection; Django's documentation advises
#: setting the database to UTC instead, as a deployment would: no setup pays that round trip.
DATABASE_SETUP = [
    "ALTER DATABASE {dbname} SET timezone TO 'UTC'",
    "CREATE TABLE bench_accounts (aid integer PRIMARY KEY, abalance integer NOT NULL)",
    f"INSERT INTO bench_accounts SELECT aid, 0 FROM generate_series(1, {ACCOUNTS}) AS aid",
    "CREATE TABLE bench_history (aid integer NOT NULL, delta integer NOT NULL,"
    " mtime timestamp NOT NULL)",
    "VACUUM ANALYZE bench_accounts",
]


def select_one(cursor: Any) -> None:
    cursor.execute("SELECT 1")
    cursor.fetchone()


def simple_update(cursor: Any) -> None:
    # pgbench's built-in "simple-update" script (pgbench -N), on tables of our own.
    aid = random.randint(1, ACCOUNTS)
    delta = random.randint(-5_000, 5_000)
    cursor.execute(
        "UPDATE bench_accounts SET abalance = abalance + %s WHERE aid = %s", [delta, aid]
    )
    cursor.execute("SELECT abalance FROM bench_accounts WHERE aid = %s", [aid])
    cursor.fetchone()
    cursor.execute(
        "INSERT INTO bench_history (aid, delta, mtime) VALUES (%s, %s, CURRENT_TIMESTAMP)",
        [aid, delta],
    )


def sleep_5ms(cursor: Any) -> None:
    cursor.execute("SELECT pg_sleep(0.005)")
    cursor.fetchone()


@dataclass(frozen=True)
class Workload:
    name: str
    #: How the tables name it, in Markdown.
    title: str
    run: Callable[[Any], None]
    #: Whether the statements run in one transaction (Django's atomic()) or in autocommit.
    atomic: bool = False


WORKLOADS = {
    workload.name: workload
    for workload in (
        Workload("select1", "`SELECT 1`", select_one),
        Workload(
            "transaction",
            "a 3-statement transaction (`pgbench -N`: UPDATE, SELECT, INSERT)",
            simple_update,
            atomic=True,
        ),
        Workload("sleep5ms", "a 5 ms query (`SELECT pg_sleep(0.005)`)", sleep_5ms),
    )
}

#: Not a request: one greenlet takes a connection and gives it back, with nothing else
#: running (see Target.checkout_django and Target.checkout_pool in setups.py).
CHECKOUT = "checkout"
