"""The README's two commands, `./noxw -s demo` and `./noxw`, on a copy of the tree.

Once with this machine's `python3`, once on a machine whose only Python is Debian's
/usr/bin/python3, which refuses `pip install` outside a virtualenv (PEP 668). Each copy starts
without .noxw/ and .nox/, as a fresh clone does. The demo runs for real (`-- --quick`); the
test command is checked through what `./noxw -l --json` would run, and the interpreter each
of those sessions would take, rather than by an hour of sessions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOX_VERSION = re.search(r"^NOX_VERSION=(\S+)$", (ROOT / "noxw").read_text(), re.MULTILINE)[1]
INSTALLING = f"noxw: installing nox {NOX_VERSION}"
# What `./noxw` runs: every session but the demo and the benchmark.
TEST_SESSIONS = {"lint", "docs", "tests", "minimum", "green", "postgis", "wheels", "install"}
TEST_SESSIONS |= {"integrations", "django_suite"}
# The sessions that run on one Python, and can take the Python running nox instead.
ONE_PYTHON = {"lint", "wheels", "install", "integrations", "django_suite"}
# Sphinx 9.1 needs Python 3.12: on an older Python the docs session can't fall back.
PREFERRED = "3.12"
# A Debian machine's PATH (/etc/profile): root's has the sbin folders, where runuser is.
DEBIAN_PATH = (
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    if os.getuid() == 0
    else "/usr/local/bin:/usr/bin:/bin"
)
DEBIAN_PYTHON = Path("/usr/bin/python3")


def copy_of_the_tree(target: Path) -> Path:
    """The tree as it would be committed (tracked and new files; nothing git ignores)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.exists():  # a tracked file deleted in the working tree is left out
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    assert not (target / ".noxw").exists() and not (target / ".nox").exists()
    return target


def this_machine() -> dict[str, str]:
    """The environment of a shell on this machine: without the virtualenv nox runs us in."""
    env = dict(os.environ)
    session = env.pop("VIRTUAL_ENV", None)
    if session:
        paths = env["PATH"].split(os.pathsep)
        env["PATH"] = os.pathsep.join(p for p in paths if not p.startswith(session))
    for name in ("NOX_CURRENT_SESSION", "NOXW_PYTHON"):
        env.pop(name, None)
    return env


def noxw(
    tree: Path, env: dict[str, str], *args: str, cwd: Path | None = None, apart: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `tree/noxw args`; its stderr goes with its stdout unless `!apart`."""
    return subprocess.run(
        [str(tree / "noxw"), *args],
        cwd=cwd or tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if apart else subprocess.STDOUT,
        text=True,
        timeout=600,
    )


def python_of(env: dict[str, str], python: str, code: str) -> str:
    return subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def version_of(env: dict[str, str], python: str | Path) -> str:
    return python_of(env, str(python), "import platform; print(platform.python_version())")


def sessions_of(tree: Path, env: dict[str, str], cwd: Path) -> dict[str, str]:
    """Each session `./noxw` runs, by name (parametrized ones once), and its interpreter."""
    listed = noxw(tree, env, "-l", "--json", cwd=cwd, apart=True)
    assert listed.returncode == 0, listed.stderr
    return {session["name"]: session["python"] for session in json.loads(listed.stdout)}


def assert_demo_ran(tree: Path, env: dict[str, str]) -> str:
    """Run the README's demo command, short; return the version of the Python it ran on."""
    demo = noxw(tree, env, "-s", "demo", "--", "--quick")
    assert demo.returncode == 0, f"the demo failed:\n{demo.stdout}"
    report = re.search(r"^backend +requests/s.*\n(?:.*\n){3}", demo.stdout, re.MULTILINE)
    assert report, f"the demo printed no report of its three backends:\n{demo.stdout}"
    assert re.search(r"^geventpool +[\d,]+ ", report[0], re.MULTILINE), report[0]
    assert (tree / "build" / "demo" / "connections.png").stat().st_size > 0
    return version_of(env, tree / ".nox" / "demo" / "bin" / "python")


def test_the_readme_commands_run_with_this_machines_python3(tmp_path: Path):
    tree = copy_of_the_tree(tmp_path / "tree")
    env = this_machine()

    demo_python = assert_demo_ran(tree, env)
    stamp = (tree / ".noxw" / "stamp").read_text().strip()
    assert stamp == f"nox=={NOX_VERSION} with python3", "noxw made .noxw with python3 from PATH"
    assert version_of(env, tree / ".noxw" / "bin" / "python") == version_of(env, "python3")
    if shutil.which(f"python{PREFERRED}", path=env["PATH"]):
        assert demo_python.startswith(f"{PREFERRED}."), "the demo runs on the Python CI uses"

    # From another folder, nox installed already: the same sessions, no second install.
    sessions = sessions_of(tree, env, cwd=tmp_path)
    assert set(sessions) >= TEST_SESSIONS, "./noxw runs every test session"
    assert not {"demo", "bench"} & set(sessions), "./noxw leaves the demo and bench out"
    again = noxw(tree, env, "--version")
    assert again.returncode == 0 and INSTALLING not in again.stdout, again.stdout
    assert again.stdout.strip() == NOX_VERSION

    # Another pin (or another NOXW_PYTHON) makes the virtualenv again.
    (tree / ".noxw" / "stamp").write_text("nox==2024.4.15 with python3\n")
    repinned = noxw(tree, env, "--version")
    assert INSTALLING in repinned.stdout and repinned.stdout.strip().endswith(NOX_VERSION)


def test_the_readme_commands_run_where_the_only_python_is_debians(tmp_path: Path):
    tree = copy_of_the_tree(tmp_path / "tree")
    env = this_machine()
    env.update(PATH=DEBIAN_PATH, PYENV_ROOT=str(tmp_path / "no-pyenv"))
    for name in ("PYENV_VERSION", "CI"):
        env.pop(name, None)
    # What makes the machine: python3 is Debian's, which refuses pip (PEP 668), and no 3.12.
    python3 = shutil.which("python3", path=env["PATH"])
    assert python3 and Path(python3).resolve() == DEBIAN_PYTHON.resolve(), python3
    stdlib = python_of(env, python3, "import sysconfig; print(sysconfig.get_path('stdlib'))")
    assert (Path(stdlib) / "EXTERNALLY-MANAGED").exists(), f"{python3} is not externally managed"
    assert shutil.which(f"python{PREFERRED}", path=env["PATH"]) is None
    debian = version_of(env, python3)
    interpreter = python_of(env, python3, "import os, sys; print(os.path.realpath(sys.executable))")

    # The demo takes the Python running nox, and says so.
    assert assert_demo_ran(tree, env) == debian, "the demo ran on Debian's Python"
    fallback = f"Python {PREFERRED} not found: the sessions that run on it take the Python"
    listed = noxw(tree, env, "-l")
    assert listed.returncode == 0 and fallback in listed.stdout, listed.stdout
    assert f"running nox, {debian} ({interpreter})" in listed.stdout

    # ./noxw: the one-Python sessions take Debian's; `tests` keeps its matrix; the docs,
    # which need 3.12, skip with a last line naming it and how to get it.
    sessions = sessions_of(tree, env, cwd=tree)
    assert set(sessions) >= TEST_SESSIONS
    assert {name: sessions[name] for name in ONE_PYTHON} == dict.fromkeys(ONE_PYTHON, interpreter)
    assert sessions["docs"] == PREFERRED
    docs = noxw(tree, env, "-s", "docs")
    assert docs.returncode == 0, docs.stdout
    assert f"Session docs skipped: Python interpreter {PREFERRED} not found" in docs.stdout
    last = docs.stdout.strip().splitlines()[-1]
    assert f"Python {PREFERRED} not found on this machine" in last, last
    assert f"pyenv install {PREFERRED}" in last, last

    # In CI nothing falls back: a missing interpreter fails the run.
    ci = noxw(tree, {**env, "CI": "1"}, "-s", "demo")
    assert ci.returncode != 0, ci.stdout
    assert f"Session demo failed: Python interpreter {PREFERRED} not found" in ci.stdout
    assert fallback not in ci.stdout


def test_noxw_says_how_to_get_the_venv_module_where_it_is_missing(tmp_path: Path):
    # Debian's python3 without python3-venv: `-m venv` fails for want of ensurepip.
    python = tmp_path / "python3-without-venv"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "-m venv" ]; then echo "ensurepip is not available" >&2; exit 1; fi\n'
        f'exec {DEBIAN_PYTHON if DEBIAN_PYTHON.exists() else "python3"} "$@"\n'
    )
    python.chmod(0o755)
    shutil.copy2(ROOT / "noxw", tmp_path / "noxw")

    failed = noxw(tmp_path, {**this_machine(), "NOXW_PYTHON": str(python)}, "-l")
    assert failed.returncode == 1, failed.stdout
    assert f"noxw: {python} could not make a virtualenv" in failed.stdout
    assert "apt install python3-venv" in failed.stdout
    assert not (tmp_path / ".noxw" / "stamp").exists(), "the next run must try again"
