"""CPU time spent by the processes a request goes through: the client, PostgreSQL, PgBouncer.

A worker reads it right before and right after its measured pass, so that a busy machine
can still be read: requests per second fall when other work takes the cores, the CPU a
request costs much less. The client is the worker itself (getrusage); the server is the
postmaster with all its children, live ones read from /proc and those that exited from
the postmaster's own count of its reaped children; PgBouncer is its one process. Linux
only; plain Python, for the workers of every virtualenv.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available() -> bool:
    return (PROC / "self" / "stat").exists()


def own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stat_fields(pid: int) -> list[str]:
    # The command name, in parentheses, may hold spaces: the fields that matter follow it.
    text = (PROC / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def process_seconds(pid: int) -> float:
    """CPU time of a live process, all its threads."""
    total = 0
    try:
        # schedstat counts nanoseconds; stat's utime and stime count clock ticks (10 ms),
        # too coarse when a pass of a second or two is spread over a dozen backends.
        for task in (PROC / str(pid) / "task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except FileNotFoundError:
        if not (PROC / str(pid)).exists():
            return 0.0  # it exited: its parent's count of reaped children has it now
        fields = _stat_fields(pid)
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total / 1e9


def reaped_children_seconds(pid: int) -> float:
    """CPU time of the children that exited and that `!pid` waited for (cutime, cstime)."""
    fields = _stat_fields(pid)
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except FileNotFoundError:
        # A kernel without CONFIG_PROC_CHILDREN: look for the parent of every process.
        for entry in PROC.iterdir():
            if entry.name.isdigit():
                try:
                    if int(_stat_fields(int(entry.name))[1]) == pid:
                        found.append(int(entry.name))
                except FileNotFoundError:
                    continue
    return found


def tree_seconds(pid: int, leave_out: Collection[int] = ()) -> float:
    """CPU time of `!pid` and of every child it has or had, but those in `!leave_out`.

    A process left out must stay alive throughout: once reaped, its time is in the
    parent's count.
    """
    total = process_seconds(pid) + reaped_children_seconds(pid)
    return total + sum(process_seconds(c) for c in children(pid) if c not in leave_out)


@dataclass(frozen=True)
class CpuMeter:
    """Reads the CPU seconds of the client, the server and PgBouncer, as far as known."""

    #: The postmaster: None where the server is not a local cluster of the benchmark's.
    server: int | None = None
    pgbouncer: int | None = None
    #: Server processes that serve the benchmark, not the setup (the connection sampler).
    leave_out: frozenset[int] = frozenset()

    def begin(self) -> dict[str, float | None]:
        """Read before a pass: the client last, so that reading /proc is not its cost."""
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
