"""The README's install and Quickstart, as written, in a new folder: they must give a working site.

The commands and the code come from README.md itself, so the two can't drift apart. Each
shell line runs in bash as if typed at a prompt: it sees the folder and the variables that
the lines before it left, so `cd` and `. venv/bin/activate` do what they do for a reader.
The first Python block replaces `DATABASES` in the settings and the second is the new
`mysite/urls.py`, as the text says; the gunicorn line starts in the background, on a free
port instead of 8000.

Two things stand in for a reader's machine, and nothing else:

- the repository: the install's `git clone` line copies this tree instead (the files a clone
  would hold, as they are now), so pip installs what is under test, built by pip from the
  folders the README names;
- the server: the tests' own, given by the `PG*` variables the Quickstart asks the reader to
  export. `PGDATABASE` is not set, and the server must not have the database the Quickstart
  creates, so that a missing `createdb` fails here as it would for the reader.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import IO

import pytest

from support.cluster import DSN_VARIABLE, free_port
from support.server import PgServer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# The one line that is not run as written: it would fetch the repository from GitHub.
CLONE = "git clone https://github.com/geventpool/geventpool"
DATABASE = "mysite"
CLIENTS = 8
PAGES_PER_CLIENT = 10


def blocks(title: str) -> list[tuple[str, str]]:
    """The fenced blocks of the README's section `!title`: (language, code)."""
    text = README.read_text()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"^( *)```(\w*)\n(.*?)^\1```$", section, re.MULTILINE | re.DOTALL)
    return [(language, textwrap.dedent(code)) for _, language, code in found]


def clone_this_tree(target: Path) -> None:
    """Copy into `!target` the files a clone of this repository holds, as they are now."""
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
    )
    if proc.returncode:
        pytest.fail(
            f"git lists no files in {ROOT}, which stands in for the README's clone: run the"
            f" tests from a git checkout\n{proc.stderr.decode()}",
            pytrace=False,
        )
    listed = proc.stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, and so in the next commit
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name, follow_symlinks=False)


def replace_databases(project: Path, snippet: str) -> None:
    """Put `!snippet` where startproject's DATABASES setting is, as the README says to."""
    settings = project / "settings.py"
    text = settings.read_text()
    new, count = re.subn(
        r"^DATABASES = \{\n.*?^\}\n", lambda _: snippet, text, flags=re.MULTILINE | re.DOTALL
    )
    assert count == 1, f"no single DATABASES block in {settings}:\n{text}"
    settings.write_text(new)


def replace_urls(project: Path, code: str) -> None:
    """Replace startproject's `urls.py` with `!code`, as the README says to."""
    urls = project / "urls.py"
    assert urls.is_file(), f"startproject made no {urls}"
    urls.write_text(code)


class Shell:
    """Command lines run one at a time in bash, each in the folder and with the exported
    variables that the lines before it left, as at a prompt."""

    def __init__(self, cwd: Path, env: dict[str, str], state: Path) -> None:
        self.cwd = cwd
        self.env = env
        self._state = state

    def run(self, line: str, timeout: float = 900) -> str:
        """Run `!line`, which must succeed; return its output, stdout and stderr merged."""
        state = self._state
        script = (
            f"{line}\n"
            'status=$?; [ "$status" = 0 ] || exit "$status"\n'
            f"printf '%s\\0' \"$PWD\" > '{state}'; env -0 >> '{state}'\n"
        )
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert proc.returncode == 0, f"{line!r} exited with {proc.returncode}:\n{proc.stdout}"
        cwd, *variables = filter(None, state.read_bytes().decode().split("\0"))
        self.cwd = Path(cwd)
        self.env = dict(variable.split("=", 1) for variable in variables)
        return proc.stdout

    def start(self, line: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start `!line` in the background, its output to `!log`."""
        return subprocess.Popen(
            ["bash", "-c", f"exec {line}"],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def readers_environment(pg: PgServer) -> dict[str, str]:
    """The environment of a reader who exported the server's variables, as the README asks."""
    env = {
        name: value
        for name, value in os.environ.items()
        # Nothing of the test process's own: its virtualenv, its imports, its pip settings,
        # its server variables (PGDATABASE above all).
        if not name.startswith(("PG", "PIP_", "PYTHON"))
        and name not in {"VIRTUAL_ENV", DSN_VARIABLE}
    }
    env.update(pg.env())
    del env["PGDATABASE"]
    if pg.cluster is not None:
        # The throwaway cluster's client programs (createdb), last: a reader who runs a server
        # has them, and the machine's own come first.
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), str(pg.cluster.bindir)])
    return env


def database_exists(pg: PgServer, name: str) -> bool:
    rows = pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name], pg.admin_dbname)
    return bool(rows)


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


def read_page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.headers.get_content_type() == "text/plain", response.headers
        return response.read().decode()


def test_the_readme_install_and_quickstart_serve_a_page_that_reads_the_database(tmp_path, pg):
    install, quickstart = blocks("Install"), blocks("Quickstart")
    assert [language for language, _ in install] == [""], install
    assert [language for language, _ in quickstart] == ["", "python", "python", ""], quickstart
    if database_exists(pg, DATABASE):
        pytest.fail(
            f"the tests' server has a database {DATABASE!r} already, which the Quickstart"
            " creates: drop it, or give the tests another server",
            pytrace=False,
        )
    home = tmp_path / "home"
    home.mkdir()
    shell = Shell(home, readers_environment(pg), tmp_path / "shell-state")
    edits = iter([replace_databases, replace_urls])
    port = free_port()
    log = tmp_path / "gunicorn.log"
    server: subprocess.Popen[bytes] | None = None
    with log.open("wb") as log_file:
        try:
            for language, code in install + quickstart:
                if language == "python":
                    next(edits)(shell.cwd / "mysite", code)
                    continue
                for line in code.splitlines():
                    if line.startswith("git clone "):
                        assert line == CLONE, f"the test copies this tree for {CLONE!r} only"
                        clone_this_tree(shell.cwd / "geventpool")
                    elif line.startswith("gunicorn "):
                        assert "--bind 127.0.0.1:8000" in line, line
                        line = line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
                        server = shell.start(line, log_file)
                    else:
                        shell.run(line)
            assert server is not None, "the Quickstart starts no gunicorn"

            # pip built our distributions from the folders the install names, not from
            # wheels found elsewhere.
            for project in ("geventpool-core", "geventpool-psycopg3"):
                direct_url = shell.run(
                    "python -c 'import importlib.metadata as m;"
                    f' print(m.distribution("{project}").read_text("direct_url.json"))\''
                )
                source = home / "geventpool" / "packages" / project
                assert json.loads(direct_url)["url"] == source.as_uri(), direct_url

            wait_until_listening(port, server, log)
            base = f"http://127.0.0.1:{port}/"
            expected = f"{pg.execute('SELECT version()')[0][0]}\nusers: 0\n"
            assert read_page(base) == expected

            def read_pages(_: int) -> list[str]:
                return [read_page(base) for _ in range(PAGES_PER_CLIENT)]

            with ThreadPoolExecutor(CLIENTS) as clients:
                pages = list(chain.from_iterable(clients.map(read_pages, range(CLIENTS))))
            assert pages == [expected] * CLIENTS * PAGES_PER_CLIENT
            # The page reads the database on each request, not once.
            shell.run(
                "DJANGO_SUPERUSER_PASSWORD=quickstart python manage.py createsuperuser"
                " --noinput --username admin --email admin@example.com"
            )
            assert read_page(base) == expected.replace("users: 0", "users: 1")

            # The workers keep connections open between requests (Django alone, with
            # CONN_MAX_AGE 0, would have closed each one), and no more than MAX_CONNS each.
            held = pg.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type ="
                " 'client backend' AND pid <> pg_backend_pid()",
                [DATABASE],
            )[0][0]
            assert 1 <= held <= 4 * 20
        finally:
            if server is not None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            # It was not there before the test: what is there now is the Quickstart's.
            pg.drop_database(DATABASE)
    output = log.read_text()
    assert "Using worker: gevent" in output, output
    assert "Traceback" not in output, output
