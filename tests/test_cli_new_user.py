"""The command line as a new user meets it: optional packages missing, relative paths, hints
in command-line terms, a broken Django setup, and ``serve`` refusing anonymous network access.

A missing optional package is simulated in a child process whose import system refuses the
package (the packages are installed here), so the real import paths are exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from curvestore import cli

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("pcodec", "zstandard", "psycopg", "boto3", "botocore", "django", "rest_framework")

_BLOCKED_CLI = textwrap.dedent("""
    import sys

    BLOCKED = set(sys.argv[1].split(","))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    from curvestore.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _env() -> dict[str, str]:
    paths = [str(ROOT), str(ROOT / "tests" / "sample_plugin"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def cli_without(blocked: tuple[str, ...], *argv: str, cwd: Path | None = None
                ) -> subprocess.CompletedProcess[str]:
    """``curvestore ARGV`` (cli.main) in a child process where ``blocked`` cannot be imported."""
    return subprocess.run([sys.executable, "-c", _BLOCKED_CLI, ",".join(blocked), *argv],
                          capture_output=True, text=True, env=_env(), cwd=cwd, timeout=120)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("curvestore: error: "), err
    assert "Traceback" not in err
    return lines[0]


# -- what is installed ----------------------------------------------------------------------
def test_plugins_reports_missing_drivers_and_codecs() -> None:
    done = cli_without(OPTIONAL, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    status = {(r["kind"], r["name"]): (r["installed"], r["status"])
              for r in json.loads(done.stdout)}
    for kind, name, extra in [("backend", "postgresql", "postgres"), ("backend", "s3", "s3"),
                              ("backend", "django", "django"), ("codec", "pcodec", "pcodec"),
                              ("codec", "zstd", "zstd"), ("codec", "zstd-shuffle", "zstd")]:
        assert status[kind, name] == (False, f'missing: pip install "curvestore[{extra}]"')
    for kind, name in [("backend", "file"), ("backend", "memory"), ("backend", "tiered"),
                       ("codec", "lz4"), ("codec", "none")]:
        assert status[kind, name] == (True, "installed")
    table = cli_without(OPTIONAL, "plugins")
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if x.strip().startswith("pcodec "))
    assert line.rstrip().endswith('missing: pip install "curvestore[pcodec]"')


def test_plugins_with_everything_installed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "--json")
    assert code == 0
    rows = {(r["kind"], r["name"]): r["installed"] for r in json.loads(out)}
    assert rows["codec", "pcodec"] and rows["backend", "postgresql"] and rows["backend", "s3"]


@pytest.mark.parametrize(("codec", "blocked", "extra"), [("pcodec", "pcodec", "pcodec"),
                                                          ("zstd", "zstandard", "zstd")])
def test_create_refuses_a_codec_that_cannot_be_imported(tmp_path: Path, codec: str,
                                                        blocked: str, extra: str) -> None:
    done = cli_without((blocked,), "create", str(tmp_path / "s"), "--keys", "site",
                       "--freq", "1h", "--tz", "UTC", "--codec", codec)
    assert done.returncode == 1
    line = one_line_error(done.stderr)
    assert f"codec {codec!r}" in line and f'pip install "curvestore[{extra}]"' in line
    assert not (tmp_path / "s").exists()  # nothing created
    opened = cli_without((blocked,), "create", str(tmp_path / "t"), "--keys", "site",
                         "--freq", "1h", "--tz", "UTC")  # the default codec still works
    assert opened.returncode == 0, opened.stderr


def test_a_backend_without_its_driver_is_one_line() -> None:
    done = cli_without(("psycopg",), "info", "postgresql://u@127.0.0.1:1/db?table=t")
    assert done.returncode == 1
    assert 'pip install "curvestore[postgres]"' in one_line_error(done.stderr)


# -- paths and URLs -------------------------------------------------------------------------
def test_create_relative_path_prints_a_url_that_opens_it(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "create", "relstore", "--keys", "site", "--freq", "1h",
                       "--tz", "UTC")
    assert code == 0
    url = out.splitlines()[0].removeprefix("store created: ")
    assert url == f"file://{tmp_path / 'relstore'}"
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    code, out, _ = run(capsys, "info", url, "--json")
    assert code == 0 and json.loads(out)["url"] == url
    code, _, err = run(capsys, "info", "./nope")
    assert code == 1
    assert f"no curvestore store at file://{tmp_path / 'other' / 'nope'};" in one_line_error(err)


# -- hints in command-line terms ------------------------------------------------------------
def test_hints_name_options_not_python(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    url = f"file://{tmp_path / 's'}"
    create = ["create", url, "--keys", "site", "--freq", "1h", "--tz", "UTC"]
    assert run(capsys, *create)[0] == 0
    code, _, err = run(capsys, *create)
    line = one_line_error(err)
    assert code == 1 and "--exist-ok" in line and "open_store" not in line
    assert run(capsys, *create, "--exist-ok")[0] == 0

    csv = tmp_path / "x.csv"
    pd.Series([1.0, 2.0], index=pd.date_range("2024-01-01", periods=2, freq="1h", tz="UTC"),
              name="v").rename_axis("t").to_csv(csv)
    assert run(capsys, "put", url, str(csv), "site=a")[0] == 0
    code, _, err = run(capsys, "put", url, str(csv), "site=a")
    line = one_line_error(err)
    assert code == 1 and "--mode update" in line and "--mode replace" in line
    assert "mode='" not in line and "site=a" in line

    code, _, err = run(capsys, "ls", f"file://{tmp_path / 'none'}")
    line = one_line_error(err)
    assert code == 1 and "curvestore create" in line and "create_store" not in line

    code, _, err = run(capsys, "create", f"{url}2?codec=zstd", "--keys", "site", "--freq",
                       "1h", "--tz", "UTC")
    line = one_line_error(err)
    assert code == 1 and "--codec" in line and "create_store(" not in line


def test_broken_django_settings_are_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "curvestore.cli", "ls", "django://app.Model"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**_env(), "DJANGO_SETTINGS_MODULE": "no_such_settings_module"})
    assert done.returncode == 1
    line = one_line_error(done.stderr)
    assert "DJANGO_SETTINGS_MODULE=no_such_settings_module" in line
    assert "no_such_settings_module" in line.split("):", 1)[1]


# -- serve ----------------------------------------------------------------------------------
def _serve(url: str, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "curvestore.cli", "serve", url, "--port", "0",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or {k: v for k, v in _env().items()
                                        if k != "CURVESTORE_TOKEN"})


def _banner(server: subprocess.Popen[str]) -> tuple[str, str]:
    """The first stdout line of a started server, then its stderr once stopped."""
    assert server.stdout is not None
    try:
        line = server.stdout.readline()
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    return line, err


def test_serve_refuses_anonymous_on_a_network_address(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    pytest.importorskip("waitress")
    url = f"file://{tmp_path / 's'}"
    assert run(capsys, "create", url, "--keys", "site", "--freq", "1h", "--tz", "UTC")[0] == 0
    # a child process: were the refusal gone, it would serve instead of returning
    done = subprocess.run([sys.executable, "-m", "curvestore.cli", "serve", url, "--host",
                           "0.0.0.0", "--port", "0"], capture_output=True, text=True,
                          timeout=60, env={k: v for k, v in _env().items()
                                           if k != "CURVESTORE_TOKEN"})
    line = one_line_error(done.stderr)
    assert done.returncode == 1 and done.stdout == ""
    assert "without a token" in line and "--allow-anonymous" in line and "--token-file" in line

    line, err = _banner(_serve(url, "--host", "0.0.0.0", "--allow-anonymous"))
    assert line.startswith(f"serving {url} on http://0.0.0.0:") and "auth: none" in line
    assert "--allow-anonymous" in err and "anyone who can reach it" in err

    (tmp_path / "token").write_text("t0ken-value\n")
    line, _ = _banner(_serve(url, "--host", "0.0.0.0", "--token-file", str(tmp_path / "token")))
    assert "auth: bearer token" in line

    line, _ = _banner(_serve(url))  # loopback without a token: allowed, as before
    assert line.startswith(f"serving {url} on http://127.0.0.1:") and "auth: none" in line


def test_is_loopback() -> None:
    assert all(map(cli.is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(cli.is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com"]))
