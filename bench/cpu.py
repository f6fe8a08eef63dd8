"""CPU time spent by the processes a request goes through: the client, PostgreSQL, PgBouncer.

A worker reads it right before and right after its measured pass, so that a busy machine
can still be read: requests per second fall when other work takes the cores, the CPU a
request costs much less. The client is the worker itself; the server is the postmaster with
all its children, live ones read from their CPU-time clocks and those that exited from the
postmaster's own count of its reaped children; PgBouncer is its one process. psutil finds
the children and reads that count. Linux only: elsewhere the CPU-time clock of another
user's process is not readable.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass

import psutil

# clock_getcpuclockid(3), which the time module does not wrap; the process has libc loaded.
_clock_getcpuclockid = ctypes.CDLL(None, use_errno=True).clock_getcpuclockid


def available() -> bool:
    return sys.platform.startswith("linux")


def own_seconds() -> float:
    return time.process_time()


def process_seconds(pid: int) -> float:
    """CPU time of a live process, all its threads, to the nanosecond; 0 once it has exited.

    psutil's cpu_times() counts clock ticks (10 ms), too coarse when a pass of a second or two
    is spread over a dozen backends: the kernel's clock of the process counts nanoseconds.
    """
    clock = ctypes.c_int()
    if _clock_getcpuclockid(pid, ctypes.byref(clock)):
        return 0.0  # it exited: its parent's count of reaped children has it now
    try:
        return time.clock_gettime_ns(clock.value) / 1e9
    except OSError:
        return 0.0  # it exited between the two calls


def reaped_children_seconds(pid: int) -> float:
    """CPU time of the children that exited and that `!pid` waited for."""
    times = psutil.Process(pid).cpu_times()
    return times.children_user + times.children_system


def tree_seconds(pid: int, leave_out: Collection[int] = ()) -> float:
    """CPU time of `!pid` and of every child it has or had, but those in `!leave_out`.

    A process left out must stay alive throughout: once reaped, its time is in the
    parent's count.
    """
    children = psutil.Process(pid).children()
    total = process_seconds(pid) + reaped_children_seconds(pid)
    return total + sum(process_seconds(c.pid) for c in children if c.pid not in leave_out)


@dataclass(frozen=True)
class CpuMeter:
    """Reads the CPU seconds of the client, the server and PgBouncer, as far as known."""

    #: The postmaster: None where the server is not a local cluster of the benchmark's.
    server: int | None = None
    pgbouncer: int | None = None
    #: Server processes that serve the benchmark, not the setup (the connection sampler).
    leave_out: frozenset[int] = frozenset()

    def begin(self) -> dict[str, float | None]:
        """Read before a pass: the client last, so that reading the others is not its cost."""
        return {**self._others(), "client": own_seconds()}

    def end(self) -> dict[str, float | None]:
        """Read after a pass: the client first."""
        client = own_seconds()
        return {**self._others(), "client": client}

    def _others(self) -> dict[str, float | None]:
        return {
            "server": None if self.server is None else tree_seconds(self.server, self.leave_out),
            "pgbouncer": None if self.pgbouncer is None else process_seconds(self.pgbouncer),
        }


def spent(
    before: dict[str, float | None], after: dict[str, float | None]
) -> dict[str, float | None]:
    """The seconds each process spent between `CpuMeter.begin` and `CpuMeter.end`."""
    result: dict[str, float | None] = {}
    for name, start in before.items():
        end = after[name]
        result[name] = None if start is None or end is None else end - start
    return result
