"""The README's Quickstart, as written, in a new virtualenv: it must give a working site.

The commands and the settings come from README.md itself, so the two can't drift apart: the
shell blocks run line by line (the venv's bin first on PATH, `cd` changing the folder), the
Python block replaces `DATABASES` in the settings the way the text says, and the gunicorn
line is started in the background, on a free port instead of 8000.
"""

from __future__ import annotations

import http.cookiejar
import re
import shlex
import signal
import socket
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support.cluster import free_port
from support.venvs import Venv

README = Path(__file__).resolve().parents[2] / "README.md"
PASSWORD = "quickstart-password"
CLIENTS = 8
PAGES_PER_CLIENT = 10


def quickstart() -> list[tuple[str, str]]:
    """The fenced blocks of the README's Quickstart section: (language, code)."""
    text = README.read_text()
    section = text.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^( *)```(\w*)\n(.*?)^\1```$", section, re.MULTILINE | re.DOTALL)
    return [(language, textwrap.dedent(code)) for _, language, code in blocks]


def replace_databases(settings: Path, snippet: str) -> None:
    """Put `!snippet` where startproject's DATABASES setting is, as the README says to."""
    text = settings.read_text()
    new, count = re.subn(
        r"^DATABASES = \{\n.*?^\}\n", lambda _: snippet, text, flags=re.MULTILINE | re.DOTALL
    )
    assert count == 1, f"no single DATABASES block in {settings}:\n{text}"
    settings.write_text(new)


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


def use_the_admin(base: str) -> int:
    """Log in to the admin as a browser does, then load its index; return pages loaded."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    login = f"{base}/admin/login/?next=/admin/"
    with opener.open(login, timeout=60) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None, page
    form = {"csrfmiddlewaretoken": token.group(1), "username": "admin", "password": PASSWORD}
    form["next"] = "/admin/"
    # The user and the session are read and written in the database on every one of these.
    with opener.open(login, data=urllib.parse.urlencode(form).encode(), timeout=60) as response:
        assert response.geturl() == f"{base}/admin/", response.read().decode()
    for _ in range(PAGES_PER_CLIENT):
        with opener.open(f"{base}/admin/", timeout=60) as response:
            assert "Site administration" in response.read().decode()
    return PAGES_PER_CLIENT


def test_the_quickstart_serves_a_site_on_the_pool_under_gunicorn_gevent(
    make_venv, tmp_path, pg, fresh_db
):
    venv: Venv = make_venv()
    port = free_port()
    env = pg.env(fresh_db)
    cwd = tmp_path
    log = tmp_path / "gunicorn.log"
    server: subprocess.Popen[bytes] | None = None
    blocks = quickstart()
    assert [language for language, _ in blocks] == ["", "", "python", ""], blocks
    with log.open("wb") as log_file:
        try:
            for language, code in blocks:
                if language == "python":
                    replace_databases(cwd / "mysite" / "settings.py", code)
                    continue
                for line in code.splitlines():
                    args = shlex.split(line)
                    if args[0] == "cd":
                        cwd = cwd / args[1]
                    elif args[0] == "gunicorn":
                        args = [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in args]
                        assert f"127.0.0.1:{port}" in args, line
                        server = subprocess.Popen(
                            args,
                            cwd=cwd,
                            env={**venv.env, **env},
                            stdin=subprocess.DEVNULL,
                            stdout=log_file,
                            stderr=subprocess.STDOUT,
                        )
                    else:
                        venv.ok(args, cwd=cwd, env=env)
            assert server is not None, "the Quickstart starts no gunicorn"
            wait_until_listening(port, server, log)
            venv.ok(
                "python manage.py createsuperuser --noinput --username admin --email a@example.com",
                cwd=cwd,
                env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
            )

            with ThreadPoolExecutor(CLIENTS) as clients:
                pages = sum(clients.map(use_the_admin, [f"http://127.0.0.1:{port}"] * CLIENTS))
            assert pages == CLIENTS * PAGES_PER_CLIENT
            assert pg.execute("SELECT count(*) FROM django_session", dbname=fresh_db) == [
                (CLIENTS,)
            ]
            # The workers keep connections open between requests (Django alone, with CONN_MAX_AGE
            # 0, would have closed each one), and no more than MAX_CONNS per worker.
            held = pg.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type ="
                " 'client backend' AND pid <> pg_backend_pid()",
                [fresh_db],
                dbname=fresh_db,
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
    output = log.read_text()
    assert "Using worker: gevent" in output, output
    assert "Traceback" not in output, output
