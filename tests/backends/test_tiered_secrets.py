"""A tiered store whose hot tier is a PostgreSQL URL with a password: the password shows in
none of ``store.url``, ``info()``, ``curvestore info`` (table and JSON) and ``serve``'s banner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

import curvestore
from curvestore import cli
from curvestore.backends.tiered import tiered_url

PASSWORD = "hot-Tier-s3cret"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiered(pg_table_url: Callable[[], str], tmp_path: Path) -> str:
    parts = urlsplit(pg_table_url())
    host = parts.netloc.rsplit("@", 1)[-1]
    hot = urlunsplit((parts.scheme, f"{parts.username or 'postgres'}:{PASSWORD}@{host}",
                      parts.path, parts.query, ""))
    cold = f"file://{tmp_path / 'cold'}"
    for url in (hot, cold):
        curvestore.create_store(url, keys={"site": str}, freq="1h", tz="UTC").close()
    return tiered_url(hot, cold)


def test_api_hides_the_hot_password(tiered: str) -> None:
    with curvestore.open_store(tiered) as store:
        shown = [store.url, str(store.info()), repr(store), str(store)]
        assert store.info()["url"] == store.url
        assert store.url.startswith("tiered://?hot=postgresql")
    assert PASSWORD in tiered  # the test would prove nothing otherwise
    for text in shown:
        assert PASSWORD not in text, text


def test_cli_info_hides_the_hot_password(tiered: str, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    assert cli.main(["info", tiered]) == 0
    table, err = capsys.readouterr()
    assert cli.main(["info", tiered, "--json"]) == 0
    data, _ = capsys.readouterr()
    assert "tiered://?hot=postgresql" in table and json.loads(data)["url"].startswith("tiered:")
    for text in (table, err, data):
        assert PASSWORD not in text


def test_serve_banner_hides_the_hot_password(tiered: str) -> None:
    pytest.importorskip("waitress")
    env = {k: v for k, v in os.environ.items() if k != "CURVESTORE_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    server = subprocess.Popen([sys.executable, "-m", "curvestore.cli", "serve", tiered,
                               "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    assert server.stdout is not None
    try:
        banner = server.stdout.readline()
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert banner.startswith("serving tiered://?hot=postgresql"), banner + err
    for text in (banner, out, err):
        assert PASSWORD not in text
