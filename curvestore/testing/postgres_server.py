"""A throw-away PostgreSQL server for tests: ``with postgres_server() as url: ...``.

When ``CURVESTORE_TEST_POSTGRES_URL`` is set, that URL is yielded as is and nothing is started.
Otherwise the helper finds the server binaries (Debian's ``/usr/lib/postgresql/<version>/bin``,
highest version first, else ``initdb``/``pg_ctl`` on ``PATH``), runs ``initdb`` into a fresh
temporary directory, starts the server on ``127.0.0.1`` with a free port (its Unix socket in the
same directory), waits until it accepts connections, yields
``postgresql://postgres@127.0.0.1:PORT/postgres`` (trust authentication on loopback), then
stops it and removes the directory.

PostgreSQL refuses to run as root: as root, the server runs as the system user ``postgres``
(it must exist, as it does wherever Debian's server package is installed); otherwise it runs
as the current user. Durability settings are left at their defaults (``fsync`` stays on), so
tests measure what production would.

Failures raise :class:`PostgresUnavailable`; the pytest fixtures (``tests/backends/conftest.py``)
turn it into a skip outside CI and a hard failure when ``CI=true`` (:func:`in_ci`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from curvestore.testing.services import in_ci

__all__ = ["ENV_URL", "PostgresUnavailable", "django_database", "find_binaries", "in_ci",
           "postgres_server"]

ENV_URL = "CURVESTORE_TEST_POSTGRES_URL"
_START_TIMEOUT = 60


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be found or started."""


def django_database(url: str) -> dict[str, Any]:
    """Django's ``DATABASES`` entry for a ``postgresql://user:password@host:port/name`` URL
    (such as :func:`postgres_server` yields), for test settings."""
    parts = urlparse(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([0-9.]+)/bin/", path)
    return tuple(int(p) for p in match.group(1).split(".") if p) if match else (0,)


def find_binaries() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (highest version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries found (looked for /usr/lib/postgresql/*/bin/initdb and "
        "initdb on PATH); install the server package (Debian: postgresql) or set "
        f"{ENV_URL} to a server's URL"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> dict[str, Any]:
    """subprocess arguments that drop root privileges to the ``postgres`` user."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresUnavailable(
            "running as root, and there is no 'postgres' system user to run the server as"
        ) from exc
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _check(cmd: list[str], what: str, log: Path | None = None, **kwargs: Any) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, timeout=_START_TIMEOUT, **kwargs)
    if proc.returncode != 0:
        detail = proc.stdout.decode(errors="replace")
        if log is not None and log.exists():
            detail += "\n" + log.read_text(errors="replace")[-4000:]
        raise PostgresUnavailable(f"{what} failed (exit {proc.returncode}):\n{detail}")


@contextlib.contextmanager
def postgres_server(*, shared_buffers: str = "128MB") -> Iterator[str]:
    """Yield the URL of a running PostgreSQL server; see the module docstring."""
    configured = os.environ.get(ENV_URL)
    if configured:
        yield configured
        return
    bindir = find_binaries()
    run_as = _run_as()
    base = Path(tempfile.mkdtemp(prefix="curvestore-pg-"))
    data, log = base / "data", base / "server.log"
    started = False
    try:
        if run_as:
            os.chown(base, run_as["user"], run_as["group"])
        os.chmod(base, 0o700)
        _check([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--locale=C"], "initdb", cwd=base, **run_as)
        for attempt in range(3):
            port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} "
                       f"-c unix_socket_directories={base} -c shared_buffers={shared_buffers} "
                       "-c max_connections=100")
            try:
                _check([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                        "-w", "-t", str(_START_TIMEOUT), "start"], "pg_ctl start", log=log,
                       cwd=base, **run_as)
            except PostgresUnavailable:
                if attempt == 2:  # the port may have been taken between probe and bind
                    raise
                continue
            started = True
            break
        _wait_ready(port)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            with contextlib.suppress(Exception):
                _check([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       "pg_ctl stop", cwd=base, **run_as)
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"PostgreSQL did not listen on port {port}") from exc
            time.sleep(0.05)
