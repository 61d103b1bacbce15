"""Paths of the benchmarks and their environment: bench/.venv with the peers installed.

Nothing here imports numpy or pandas: the scripts call ``ensure_env`` first, with whatever Python
started them, and it re-executes them inside bench/.venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent
VENV = BENCH / ".venv"
WORK = BENCH / ".work"
VENV_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BENCH / "requirements.txt"
RUN_SCRIPT = BENCH / "run.py"
#: Set in the environment of the re-executed script, so it does not install again.
INSTALLED_FLAG = "CURVESTORE_BENCH_INSTALLED"


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def run_command(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def package_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def wants_postgres(argv: list[str]) -> bool:
    """Whether the command line asks for a PostgreSQL run (before argparse: the bootstrap)."""
    return "--postgres" in argv or any(a.startswith(("postgresql://", "postgres://",
                                                     "--url=postgres")) for a in argv)


def install_env() -> None:
    """Create bench/.venv if needed and install the peers and curvestore into it (with the
    ``[postgres]`` extra, i.e. psycopg 3, for PostgreSQL runs: Django's engine needs it too)."""
    if sys.version_info >= (3, 13):
        print("warning: holcstore 0.6.7 declares Requires-Python <=3.12", file=sys.stderr)
    if not VENV_PYTHON.exists():
        run_command([sys.executable, "-m", "venv", str(VENV)])
    py = str(VENV_PYTHON)
    run_command([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                 str(REQUIREMENTS)])
    if wants_postgres(sys.argv[1:]):  # also when the editable install fails below
        run_command([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     "psycopg[binary]>=3.1"])
    if (REPO / "pyproject.toml").exists():
        try:
            target = f"{REPO}[postgres]" if wants_postgres(sys.argv[1:]) else str(REPO)
            run_command([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                         "-e", target])
        except subprocess.CalledProcessError:
            print("warning: `pip install -e` of curvestore failed; importing it from the "
                  "repository through sys.path instead", file=sys.stderr)


def ensure_env(skip_install: bool, script: Path = RUN_SCRIPT, extras: tuple[str, ...] = (),
               ) -> None:
    """Make sure ``script`` runs inside bench/.venv with everything (and ``extras``, pip
    requirements) installed, re-executing it there if needed."""
    if os.environ.get(INSTALLED_FLAG) == "1":
        return
    if skip_install:
        if in_venv():
            return
        if not VENV_PYTHON.exists():
            sys.exit(f"--skip-install: {VENV} does not exist; run without --skip-install first")
    else:
        install_env()
        if extras:
            run_command([str(VENV_PYTHON), "-m", "pip", "install", "-q",
                         "--disable-pip-version-check", *extras])
    env = dict(os.environ, **{INSTALLED_FLAG: "1"})
    os.execve(str(VENV_PYTHON), [str(VENV_PYTHON), str(script.resolve()), *sys.argv[1:]], env)


def import_curvestore_from_repository() -> None:
    """Let ``import curvestore`` find the repository when it is not pip-installed (a failed
    editable install): called once the script runs in its final interpreter."""
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))


def new_run_id() -> str:
    """A run's id: its start time and a random part (two runs never share one)."""
    return time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]


def run_workdir(given: str | None, prefix: str) -> Path:
    """Where a run's stores go: ``given`` (created if missing), else a new directory under
    bench/.work named after ``prefix``."""
    if given:
        workdir = Path(given)
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir
    WORK.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=WORK))
