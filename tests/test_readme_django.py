"""The README's "minimal server with sync", built from the README's own code blocks and run.

The project (settings, ``myapp/models.py``, ``urls.py``) is written from the README, plus what
``django-admin startproject`` would have written (SECRET_KEY, ROOT_URLCONF...); only the
database name and the client's host are substituted. A child process (Django's settings are
per process) runs the README's ``manage.py`` steps, the server-side block, serves the project
on a real socket, probes it anonymously and with a wrong token, then runs the replica's block.
PostgreSQL is a throw-away server, reached through libpq's environment as the README's
``DATABASES`` entry (no host, no user) is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from curvestore.testing.postgres_server import PostgresUnavailable, postgres_server
from curvestore.testing.services import in_ci, service_unavailable

ROOT = Path(__file__).resolve().parents[1]
if not in_ci():
    for module in ("django", "rest_framework", "psycopg", "requests"):
        pytest.importorskip(module)

STARTPROJECT = """\
SECRET_KEY = "readme-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""

DRIVER = textwrap.dedent("""
    import io, json, os, sys, threading
    from pathlib import Path
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import django
    django.setup()
    import pandas as pd
    import requests
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    blocks = json.loads(Path("blocks.json").read_text())
    # the README's manage.py steps
    call_command("makemigrations", "myapp", verbosity=0)
    call_command("migrate", verbosity=0)
    call_command("createsuperuser", username="replica", email="", interactive=False,
                 verbosity=0)
    out = io.StringIO()
    call_command("drf_create_token", "replica", stdout=out)
    token = out.getvalue().split()[2]  # "Generated token <key> for user replica"

    from myapp.models import Loads, LoadsReplica

    refused = {}
    index = pd.date_range("2024-01-01", periods=8, freq="15min", tz="Europe/Paris")
    for name, attempt in [
            ("insert", lambda: Loads.set_ts({"meter": "X"}, pd.Series(1.0, index=index))),
            ("set_many_ts", lambda: Loads.set_many_ts({("X",): pd.Series(1.0, index=index)},
                                                      ("meter",))),
            ("hard_delete", lambda: Loads.objects.filter(meter="M1").delete())]:
        try:
            attempt()
            refused[name] = None
        except ValueError as exc:
            refused[name] = str(exc)
    exec(blocks["server"], {})

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            return None  # the test's own server logs nothing: the README's is what is tested

    httpd = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    endpoint = f"{base}/ts/loads"
    anonymous = {p: requests.get(f"{endpoint}/{p}", timeout=30).status_code
                 for p in ("updates/", "changes/", "manifest/", "chunks/", "pack/")}
    wrong = requests.get(f"{endpoint}/changes/", timeout=30,
                         headers={"Authorization": "Token not-the-token"}).status_code
    authenticated = requests.get(f"{endpoint}/changes/", timeout=30,
                                 headers={"Authorization": f"Token {token}"})

    os.environ["LOADS_TOKEN"] = token
    scope = {}
    exec(blocks["replica"].replace("https://loads.example.com", base), scope)
    again = scope["client"].pull()
    httpd.shutdown()

    def values(model, meter):
        series = model.get_ts({"meter": meter})
        return None if series is None else [str(series.index[0]), len(series),
                                            float(series.sum())]

    print(json.dumps({
        "refused": refused, "anonymous": anonymous, "wrong_token": wrong,
        "authenticated": [authenticated.status_code, len(authenticated.json()["items"])],
        "pulled": [scope["fetched"], scope["deleted"]], "pulled_again": list(again),
        "server": {m: values(Loads, m) for m in ("M1", "M2")},
        "replica": {m: values(LoadsReplica, m) for m in ("M1", "M2")},
    }))
""")


def readme_django_blocks() -> dict[str, str]:
    """The README's project files (path -> code), server block and replica block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("A minimal server with sync"):]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    files_code = next(code for lang, code in blocks if code.startswith("# settings.py"))
    found: dict[str, str] = {}
    for match in re.finditer(r"^# ([\w/]+\.py)\b.*?$\n(.*?)(?=^# [\w/]+\.py\b|\Z)", files_code,
                             flags=re.S | re.M):
        found[match.group(1)] = match.group(2)
    found["server"] = next(c for _, c in blocks if c.startswith("# on the server"))
    found["replica"] = next(c for _, c in blocks if c.startswith("# on the replica"))
    assert {"settings.py", "myapp/models.py", "urls.py"} <= set(found), sorted(found)
    return found


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    try:
        with postgres_server() as url:
            yield url
    except (PostgresUnavailable, OSError) as exc:
        service_unavailable("PostgreSQL", str(exc))


def test_readme_django_sync_example_runs_as_written(tmp_path: Path, postgres: str) -> None:
    import psycopg
    from psycopg import sql

    blocks = readme_django_blocks()
    database = f"loads_{uuid.uuid4().hex[:12]}"
    settings = blocks["settings.py"]
    assert '"NAME": "loads"' in settings
    (tmp_path / "settings.py").write_text(
        STARTPROJECT + settings.replace('"NAME": "loads"', f'"NAME": "{database}"'))
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "models.py").write_text(blocks["myapp/models.py"])
    (tmp_path / "urls.py").write_text(blocks["urls.py"])
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))

    server = urlsplit(postgres)
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DJANGO_"))}
        env.update(PGHOST=server.hostname or "127.0.0.1", PGPORT=str(server.port or 5432),
                   PGUSER=server.username or "postgres", DJANGO_SETTINGS_MODULE="settings",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), str(ROOT),
                                                            os.environ.get("PYTHONPATH")])))
        done = subprocess.run([sys.executable, "-c", DRIVER], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    # ALLOW_CLIENT_SERVER_SYNC = True: what the README says is refused, is
    assert all(result["refused"].values()), result["refused"]
    assert "ALLOW_CLIENT_SERVER_SYNC" in result["refused"]["insert"]
    # nobody reads the store without a valid token
    assert result["anonymous"] == {p: 401 for p in ("updates/", "changes/", "manifest/",
                                                    "chunks/", "pack/")}
    assert result["wrong_token"] == 401
    assert result["authenticated"][0] == 200 and result["authenticated"][1] > 0
    # the replica holds what the server holds: M1, and M2 deleted (tombstoned)
    month_points = 91 * 96 - 4  # 2024-01-01 .. 03-31 23:45 in Europe/Paris (DST on 03-31)
    assert result["server"] == {"M1": ["2024-01-01 00:00:00+01:00", month_points,
                                       1.5 * month_points], "M2": None}
    assert result["replica"] == result["server"]
    assert result["pulled"][0] > 0
    assert result["pulled_again"] == [0, 0]
