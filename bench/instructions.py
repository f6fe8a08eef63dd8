"""Instructions per request and per checkout, counted by valgrind: figures a busy machine
doesn't move.

    ./noxw -s bench -- --instructions

Requests per second and CPU time vary from run to run on a shared machine, by more than
what separates two pools. Valgrind's callgrind counts the instructions a worker executes in
user space; run twice with different request counts, the difference divided by the
difference in requests is the cost of one request, the same on every run to a few
hundredths of a percent. It counts the client's Python and C work, which is what a pool
adds, and leaves out the kernel (sending and receiving), the server, cache misses and the
clock: it says where the client's time goes, requests per second say what it buys.

Under valgrind the client runs some fifty times slower, so every answer is already there
when it asks: no setup waits for the server, and the scheduling is the one of a server
infinitely fast. PgBouncer rows count Django's side only.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.report import NONE, REFERENCE, TIMES, label, markdown_table
from bench.workloads import CHECKOUT

if TYPE_CHECKING:
    from bench.bench import Row

#: Request cycles of the measured pass in the two runs: the smaller holds what a run costs
#: besides requests (the interpreter, imports, the warm-up), the larger that plus requests.
CYCLES = (300, 1_300)
#: Checkouts in the two runs, likewise.
CHECKOUTS = (1_000, 6_000)
#: The request workload counted: the one whose cost is nearly all the client's.
WORKLOAD = "select1"

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def valgrind() -> str | None:
    return shutil.which("valgrind")


@dataclass(frozen=True)
class Count:
    """What one row costs, in instructions."""

    request: float
    checkout_django: float | None = None
    checkout_pool: float | None = None


#: ``worker(row, workload, app_name, *options)``: a worker's command line and environment.
Worker = Callable[..., tuple[list[str], dict[str, str]]]


def run(binary: str, command: list[str], env: dict[str, str], cwd: str) -> tuple[int, Any]:
    """Run `!command` under callgrind; return the instructions it executed and its JSON."""
    done = subprocess.run(
        [binary, "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        cwd=cwd,
        # String hashes decide how many probes a dictionary lookup takes: a random seed
        # moves a checkout's count by 2 %, a fixed one by less than 0.1 %.
        env={**env, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"{shlex.join(command)} failed under valgrind:\n{done.stderr[-4000:]}")
    return int(found.group(1)), json.loads(done.stdout.splitlines()[-1])


def scaled(counts: tuple[int, int], scale: float, least: int) -> tuple[int, int]:
    """The two counts times `!scale` (`--quick`, `--scale`), at least `!least` apart."""
    low = max(int(counts[0] * scale), least)
    return low, max(int(counts[1] * scale), low + least)


def request_counts(scale: float) -> tuple[int, int]:
    """The request cycles of the two runs, at `!scale`."""
    return scaled(CYCLES, scale, 100)


def checkout_counts(scale: float) -> tuple[int, int]:
    """The checkouts of the two runs, at `!scale`."""
    return scaled(CHECKOUTS, scale, 100)


def per_request(binary: str, worker: Worker, row: Row, cwd: str, scale: float) -> float:
    """Instructions per request cycle of `WORKLOAD` for a row."""
    runs = []
    for cycles in request_counts(scale):
        command, env = worker(row, WORKLOAD, f"bench-ir-{cycles}", "--cycles", str(cycles))
        instructions, result = run(binary, command, env, cwd)
        runs.append((instructions, int(result["requests"]) + int(result["warmup_requests"])))
    (low, low_requests), (high, high_requests) = runs
    return (high - low) / (high_requests - low_requests)


def per_checkout(
    binary: str, worker: Worker, row: Row, kind: str, cwd: str, scale: float
) -> float | None:
    """Instructions per checkout + return of `!kind` ("django" or "pool") for a row, or None
    where the row has nothing of the kind (the pool alone, for a row without a pool)."""
    counts = []
    checkouts_run = checkout_counts(scale)
    for checkouts in checkouts_run:
        options = ["--cycles", str(checkouts), "--repeat", "1", "--exact", "--kind", kind]
        command, env = worker(row, CHECKOUT, f"bench-ir-{kind}", *options)
        instructions, result = run(binary, command, env, cwd)
        if f"{kind}_iterations" not in result:
            return None
        counts.append(instructions)
    return (counts[1] - counts[0]) / (checkouts_run[1] - checkouts_run[0])


def count_rows(
    binary: str, rows: list[Row], worker: Worker, cwd: str, parallel: int, scale: float
) -> dict[str, Count]:
    """Count every row, `!parallel` measurements at a time (a valgrind run takes one core)."""
    tasks: list[tuple[Row, str]] = []
    for row in rows:
        tasks.append((row, "request"))
        if row.checkout:
            tasks += [(row, "django"), (row, "pool")]

    def measure(task: tuple[Row, str]) -> float | None:
        row, kind = task
        if kind == "request":
            return per_request(binary, worker, row, cwd, scale)
        return per_checkout(binary, worker, row, kind, cwd, scale)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as executor:
        found = {
            (row.setup, kind): value
            for (row, kind), value in zip(tasks, executor.map(measure, tasks), strict=True)
        }
    counts = {}
    for row in rows:
        request = found[row.setup, "request"]
        assert request is not None  # only checkouts can find nothing to count
        counts[row.setup] = Count(
            request, found.get((row.setup, "django")), found.get((row.setup, "pool"))
        )
    return counts


def format_table(counts: dict[str, Count], conns: int) -> str:
    ours = counts[REFERENCE].request
    rows = []
    for setup, count in counts.items():
        rows.append(
            [
                label(setup, conns),
                f"{count.request / 1000:,.1f}k",
                f"{count.request / ours:.2f}{TIMES}",
                NONE if count.checkout_django is None else f"{count.checkout_django / 1000:,.1f}k",
                NONE if count.checkout_pool is None else f"{count.checkout_pool / 1000:,.1f}k",
            ]
        )
    header = [
        "setup",
        "per `SELECT 1` request",
        "ours ÷ setup, in requests per instruction",
        "per checkout through Django",
        "per checkout of the pool alone",
    ]
    return markdown_table(header, ["---", "--:", "--:", "--:", "--:"], rows)
