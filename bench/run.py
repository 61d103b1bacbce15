"""Benchmark curvestore against its peers (ArcticDB on LMDB, holcstore on SQLite).

holcstore's own load workload scaled to this machine: N series x Y years of 15-min float64 in
Europe/Paris with month chunks, on two data sets ("random": seeded uniform random values, the
incompressible worst case; "load": realistic meter load curves from curvestore.sampledata).
Every system gets the same data in the same run, through its public API only, on a fresh store,
and every read is checked against what was written (exact float64 equality).

Run from anywhere::

    python bench/run.py                      # creates bench/.venv, installs, runs everything
    python bench/run.py --skip-install       # reuse bench/.venv as it is
    python bench/run.py --systems arcticdb,holcstore --n 10 --years 1
    python bench/run.py --postgres           # holcstore and curvestore on a throw-away PostgreSQL
    python bench/run.py --skip-install --systems arcticdb,holcstore,curvestore \
        --url 'postgresql://user@127.0.0.1:5432/db?table=bench_{dataset}_{run}'

The script creates ``bench/.venv`` (without system site packages), installs the peers pinned in
``bench/requirements.txt`` and curvestore from the repository (editable), then runs itself again
inside that environment. Results go to ``bench/RESULTS.md`` (``--output``) and the raw numbers to
``bench/.work/results.json``; stores live under ``bench/.work``.

Operations, per system and data set:

- ``write_many``: all N series in one bulk call;
- ``read_each``: one full read per series (total time);
- ``read_many``: one streaming/batch read of every series (total time);
- ``read_month``: 200 random (series, calendar month) windows, median and p95;
- ``update_week``: one overlapping 1-week update per series (the last days of a month spilling
  into the next), median and p95;
- ``bytes``: bytes per point on disk after the initial write (and again after the updates).

Adding a system means writing one small class with the same methods (see ``System``).

PostgreSQL: with ``--postgres`` or a ``postgresql://`` ``--url``, holcstore runs on PostgreSQL
too (Django's postgresql engine, psycopg 3) on the SAME server as curvestore, and the results go
to ``bench/RESULTS-postgres.md`` with the PostgreSQL targets. Without a URL, a throw-away server
is started with ``curvestore.testing.postgres_server`` (initdb into a temp dir, free port) and
removed afterwards. ``{dataset}`` and ``{run}`` in the URL give every setup its own table (``{run}``
changes at every repeat); the curvestore tables a run created are dropped after it has been
measured (``--keep-tables`` keeps them), holcstore's table is dropped and re-created per run.
ArcticDB has no PostgreSQL storage: it stays on LMDB, listed for reference only.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
WORK = BENCH / ".work"
VENV_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BENCH / "requirements.txt"
_INSTALLED_FLAG = "CURVESTORE_BENCH_INSTALLED"

KEYS = ("site", "kind")
FREQ = "15min"
TZ = "Europe/Paris"
KINDS = ("consumption", "production")
PEERS = ("arcticdb", "holcstore")


# -- environment ---------------------------------------------------------------------------------
def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _wants_postgres(argv: list[str]) -> bool:
    """Whether the command line asks for a PostgreSQL run (before argparse: the bootstrap)."""
    return "--postgres" in argv or any(a.startswith(("postgresql://", "postgres://",
                                                     "--url=postgres")) for a in argv)


def install_env() -> None:
    """Create bench/.venv if needed and install the peers and curvestore into it (with the
    ``[postgres]`` extra, i.e. psycopg 3, for PostgreSQL runs: Django's engine needs it too)."""
    if sys.version_info >= (3, 13):
        print("warning: holcstore 0.6.7 declares Requires-Python <=3.12", file=sys.stderr)
    if not VENV_PYTHON.exists():
        _run([sys.executable, "-m", "venv", str(VENV)])
    py = str(VENV_PYTHON)
    _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
          str(REQUIREMENTS)])
    if _wants_postgres(sys.argv[1:]):  # also when the editable install fails below
        _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
              "psycopg[binary]>=3.1"])
    if (REPO / "pyproject.toml").exists():
        try:
            target = f"{REPO}[postgres]" if _wants_postgres(sys.argv[1:]) else str(REPO)
            _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e",
                  target])
        except subprocess.CalledProcessError:
            print("warning: `pip install -e` of curvestore failed; importing it from the "
                  "repository through sys.path instead", file=sys.stderr)


def ensure_env(skip_install: bool) -> None:
    """Make sure we run inside bench/.venv with everything installed, re-executing if needed."""
    if os.environ.get(_INSTALLED_FLAG) == "1":
        return
    if skip_install:
        if _in_venv():
            return
        if not VENV_PYTHON.exists():
            sys.exit(f"--skip-install: {VENV} does not exist; run without --skip-install first")
    else:
        install_env()
    env = dict(os.environ, **{_INSTALLED_FLAG: "1"})
    os.execve(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()),
                                 *sys.argv[1:]], env)


# -- imports that need the venv --------------------------------------------------------------------
np: Any = None
pd: Any = None


def _import_common() -> None:
    global np, pd
    import numpy
    import pandas

    np, pd = numpy, pandas
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))  # curvestore from the repository if not pip-installed


class BenchError(AssertionError):
    """A system did not read back what it was given."""


# -- data ------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    name: str
    description: str
    keys: list[tuple[str, str]]
    series: list[Any]  # pd.Series, tz-aware, named "value"
    month_starts: Any  # pd.DatetimeIndex of local month starts, the end included

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.series)


def _index(start: str, end: str) -> Any:
    return pd.date_range(pd.Timestamp(start, tz=TZ), pd.Timestamp(end, tz=TZ), freq=FREQ,
                         inclusive="left").as_unit("ns")


def make_dataset(name: str, n: int, start: str, end: str, seed: int) -> Dataset:
    keys = [(f"site{i:04d}", KINDS[i % len(KINDS)]) for i in range(n)]
    if name == "random":
        index = _index(start, end)
        series = [pd.Series(np.random.default_rng([seed, i]).random(len(index)), index=index,
                            name="value") for i in range(n)]
        description = "seeded uniform random float64 (incompressible)"
    elif name == "load":
        from curvestore import sampledata

        series = [s.rename("value") for s in
                  sampledata.load_curves(n, start, end, freq=FREQ, tz=TZ, seed=seed)]
        description = "curvestore.sampledata.load_curves: realistic meter curves, 0.1 kW steps"
    else:
        raise SystemExit(f"unknown data set {name!r}")
    month_starts = pd.date_range(pd.Timestamp(start, tz=TZ), pd.Timestamp(end, tz=TZ),
                                 freq="MS")
    return Dataset(name, description, keys, series, month_starts)


def check_same(got: Any, expected: Any, what: str) -> None:
    """Fail loudly unless ``got`` has exactly the instants and float64 values of ``expected``."""
    if got is None:
        raise BenchError(f"{what}: read returned None")
    index = got.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise BenchError(f"{what}: expected a tz-aware DatetimeIndex, got {type(index)} "
                         f"tz={getattr(index, 'tz', None)}")
    if len(got) != len(expected):
        raise BenchError(f"{what}: {len(got)} points read, {len(expected)} expected "
                         f"(read {index[:1].tolist()}..{index[-1:].tolist()})")
    if not np.array_equal(index.as_unit("ns").asi8, expected.index.as_unit("ns").asi8):
        raise BenchError(f"{what}: timestamps differ")
    values = np.asarray(got.to_numpy(), dtype="float64")
    if not np.array_equal(values, expected.to_numpy(), equal_nan=True):
        bad = int(np.sum(~((values == expected.to_numpy()) |
                           (np.isnan(values) & np.isnan(expected.to_numpy())))))
        raise BenchError(f"{what}: {bad} values differ")


# -- disk usage ------------------------------------------------------------------------------------
def disk_usage(path: Path, skip: Callable[[Path], bool] = lambda p: False) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of the files under ``path``."""
    apparent = allocated = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if skip(p):
                continue
            st = p.lstat()
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


@dataclass
class Bytes:
    measured: int  # the number behind B/point
    how: str
    extra: dict[str, int] = field(default_factory=dict)


# -- systems ---------------------------------------------------------------------------------------
class System(ABC):
    """One store under test. Every method but ``setup`` and ``bytes`` is timed by the harness."""

    name = "?"  # short id used by --systems
    label = "?"  # column title in the results
    peer = True  # a reference system (ratios are computed against peers)
    calls: ClassVar[dict[str, str]] = {}  # operation -> the public API it uses

    @abstractmethod
    def setup(self, dataset: Dataset) -> None:
        """Start from a fresh, empty store for ``dataset``."""

    def after_write(self) -> dict[str, Any]:
        """Untimed housekeeping right after write_many; returns facts worth reporting."""
        return {}

    @abstractmethod
    def write_many(self, mapping: dict[tuple[str, str], Any]) -> None:
        """Insert every series of ``mapping`` in one bulk call."""

    @abstractmethod
    def read(self, key: tuple[str, str]) -> Any:
        """The whole series ``key``."""

    @abstractmethod
    def read_many(self) -> Iterator[tuple[tuple[str, str], Any]]:
        """Every series, through the system's bulk read."""

    @abstractmethod
    def read_window(self, key: tuple[str, str], start: Any, end: Any) -> Any:
        """The points in ``[start, end]``, both inclusive."""

    @abstractmethod
    def update(self, key: tuple[str, str], series: Any) -> None:
        """Overwrite the points of ``series`` and keep the others."""

    @abstractmethod
    def bytes(self) -> Bytes:
        """What the stored data costs on disk."""

    def teardown(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what ``setup`` acquired (servers, files) once the run is over."""

    def versions(self) -> dict[str, str]:
        return {}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


class ArcticDBSystem(System):
    name = "arcticdb"
    calls: ClassVar[dict[str, str]] = {
        "write_many": "write_batch([WritePayload])",
        "read_each": "read(symbol)",
        "read_many": "read_batch(list_symbols())",
        "read_month": "read(symbol, date_range=(start, end))",
        "update_week": "update(symbol, series)",
        "bytes": "LMDB data.mdb sizes",
    }

    def __init__(self) -> None:
        import arcticdb

        self.adb = arcticdb
        self.label = f"ArcticDB {arcticdb.__version__} (LMDB)"
        self.lib: Any = None
        self.ac: Any = None

    def versions(self) -> dict[str, str]:
        return {"arcticdb": self.adb.__version__}

    @staticmethod
    def symbol(key: tuple[str, str]) -> str:
        return "__".join(key)

    def setup(self, dataset: Dataset) -> None:
        self.path = WORK / dataset.name / "arcticdb-lmdb"
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ac = self.adb.Arctic(f"lmdb://{self.path}")
        self.lib = self.ac.get_library("bench", create_if_missing=True)

    def _check(self, results: list[Any], what: str) -> list[Any]:
        errors = [r for r in results if isinstance(r, self.adb.version_store.library.DataError)]
        if errors:
            raise BenchError(f"ArcticDB {what}: {errors[:3]}")
        return results

    def write_many(self, mapping: dict[tuple[str, str], Any]) -> None:
        payloads = [self.adb.WritePayload(self.symbol(k), s) for k, s in mapping.items()]
        self._check(self.lib.write_batch(payloads), "write_batch")

    def read(self, key: tuple[str, str]) -> Any:
        return self.lib.read(self.symbol(key)).data

    def after_write(self) -> dict[str, Any]:
        # The first list_symbols() after writes compacts ArcticDB's symbol list under a storage
        # lock (about 1 s here, whatever N): done once untimed, so read_many measures reads.
        t0 = time.perf_counter()
        symbols = self.lib.list_symbols()
        return {"first_list_symbols_s": time.perf_counter() - t0, "symbols": len(symbols)}

    def read_many(self) -> Iterator[tuple[tuple[str, str], Any]]:
        symbols = self.lib.list_symbols()
        for item in self._check(self.lib.read_batch(symbols), "read_batch"):
            yield tuple(item.symbol.split("__")), item.data

    def read_window(self, key: tuple[str, str], start: Any, end: Any) -> Any:
        return self.lib.read(self.symbol(key), date_range=(start, end)).data

    def update(self, key: tuple[str, str], series: Any) -> None:
        self.lib.update(self.symbol(key), series)

    def bytes(self) -> Bytes:
        apparent, allocated = disk_usage(self.path, skip=lambda p: p.name == "lock.mdb")
        return Bytes(apparent, "apparent size of the LMDB data.mdb files",
                     {"allocated": allocated})

    def teardown(self) -> None:
        self.lib = None
        self.ac = None
        gc.collect()


_django_ready = False


def _django_postgres(url: str) -> dict[str, Any]:
    """Django's DATABASES entry for a postgresql:// URL (libpq env fills what it omits)."""
    from urllib.parse import parse_qsl, unquote

    parts = urlsplit(url)
    options = {k: v for k, v in parse_qsl(parts.query) if k in _LIBPQ_URL_OPTIONS}
    return {"ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or os.environ.get("PGDATABASE")
            or (None if "service" in options else os.environ.get("PGUSER", "postgres")),
            "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "", "PORT": str(parts.port or ""), "OPTIONS": options,
            "CONN_MAX_AGE": None}


def _setup_django(db_path: Path, pg_url: str | None = None) -> None:
    global _django_ready
    if _django_ready:
        return
    import django
    from django.conf import settings

    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=["hostore", "hostore_bench"],
        DATABASES={"default": _django_postgres(pg_url) if pg_url else
                   {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db_path)}},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()
    _django_ready = True


class HolcstoreSystem(System):
    name = "holcstore"
    calls: ClassVar[dict[str, str]] = {
        "write_many": "set_many_ts(mapping, keys=('site', 'kind'))",
        "read_each": "get_ts(attrs)",
        "read_many": "yield_many_ts({})",
        "read_month": "get_ts(attrs, start, end)",
        "update_week": "set_ts(attrs, series, update=True)",
        "bytes": "SQLite file after VACUUM INTO a copy",
    }

    def __init__(self, pg_url: str | None = None) -> None:
        """On SQLite (bench/.work), or on the PostgreSQL server of ``pg_url``."""
        self.db_path = WORK / "holcstore.sqlite3"
        self.pg = pg_url is not None
        _setup_django(self.db_path, pg_url)
        import django
        from hostore_bench.models import BenchLoadCurve

        self.model = BenchLoadCurve
        self.django = django
        engine = "PostgreSQL" if self.pg else "SQLite"
        self.label = f"holcstore {_version('holcstore')} (Django {django.__version__}, {engine})"
        if self.pg:
            self.calls = {**self.calls, "bytes": "pg_total_relation_size(table)"}

    def versions(self) -> dict[str, str]:
        if self.pg:
            import psycopg

            return {"holcstore": _version("holcstore"), "Django": self.django.__version__,
                    "psycopg": psycopg.__version__}
        import sqlite3

        return {"holcstore": _version("holcstore"), "Django": self.django.__version__,
                "SQLite": sqlite3.sqlite_version}

    def setup(self, dataset: Dataset) -> None:
        from django.db import connection

        connection.close()
        if self.pg:  # same fixed table name every run (holcstore derives it): drop, re-create
            with connection.cursor() as cursor:
                cursor.execute("DROP TABLE IF EXISTS "
                               f"{connection.ops.quote_name(self.model._meta.db_table)} CASCADE")
        else:
            WORK.mkdir(parents=True, exist_ok=True)
            self.db_path.unlink(missing_ok=True)
        with connection.schema_editor() as editor:
            editor.create_model(self.model)

    @staticmethod
    def attrs(key: tuple[str, str]) -> dict[str, str]:
        return dict(zip(KEYS, key, strict=True))

    def write_many(self, mapping: dict[tuple[str, str], Any]) -> None:
        self.model.set_many_ts(mapping, keys=KEYS)

    def read(self, key: tuple[str, str]) -> Any:
        return self.model.get_ts(self.attrs(key))

    def read_many(self) -> Iterator[tuple[tuple[str, str], Any]]:
        for series, attrs in self.model.yield_many_ts({}):
            yield tuple(attrs[k] for k in KEYS), series

    def read_window(self, key: tuple[str, str], start: Any, end: Any) -> Any:
        return self.model.get_ts(self.attrs(key), start=start, end=end)

    def update(self, key: tuple[str, str], series: Any) -> None:
        self.model.set_ts(self.attrs(key), series, update=True)

    def bytes(self) -> Bytes:
        from django.db import connection

        if self.pg:
            with connection.cursor() as cursor:
                sizes = pg_sizes(cursor, [self.model._meta.db_table], "data")
            return Bytes(sizes.pop("total"), PG_BYTES_HOW, sizes)
        copy = self.db_path.with_suffix(".vacuumed")
        copy.unlink(missing_ok=True)
        table = self.model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute("VACUUM INTO %s", [str(copy)])
            cursor.execute(f'SELECT sum(length(data)) FROM "{table}"')
            payload = int(cursor.fetchone()[0] or 0)
        size = copy.stat().st_size
        copy.unlink()
        return Bytes(size, "SQLite database file size after VACUUM",
                     {"payload": payload, "file_before_vacuum": self.db_path.stat().st_size})

    def teardown(self) -> None:
        from django.db import connection

        connection.close()


PG_BYTES_HOW = ("pg_total_relation_size of the tables (heap + TOAST + indexes), no VACUUM")
# libpq parameters a postgresql:// URL may carry (curvestore's own options are dropped)
_LIBPQ_URL_OPTIONS = frozenset({
    "application_name", "connect_timeout", "gssencmode", "keepalives", "keepalives_idle",
    "keepalives_interval", "keepalives_count", "options", "passfile", "service", "sslcert",
    "sslcrl", "sslkey", "sslmode", "sslrootcert", "target_session_attrs", "tcp_user_timeout"})


def pg_sizes(cursor: Any, tables: list[str], payload_column: str | None = None,
             schema: str = "public") -> dict[str, int]:
    """Sizes of ``tables`` (in ``schema``): total (heap + TOAST + indexes), and the parts."""
    total = heap = toast = indexes = payload = 0
    for i, table in enumerate(tables):
        name = f'"{schema}"."{table}"'
        cursor.execute(
            "SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid), "
            "coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), "
            "pg_indexes_size(c.oid) FROM pg_class c WHERE c.oid = to_regclass(%s)", [name])
        row = cursor.fetchone()
        if row is None:
            continue
        total += int(row[0])
        heap += int(row[1])
        toast += int(row[2])
        indexes += int(row[3])
        if payload_column and i == 0:
            cursor.execute(f'SELECT coalesce(sum(octet_length("{payload_column}")), 0) '
                           f"FROM {name}")
            payload = int(cursor.fetchone()[0])
    return {"total": total, "heap": heap, "toast": toast, "indexes": indexes,
            "payload": payload}


def pg_plain_url(url: str) -> str:
    """A postgresql:// URL without curvestore's options (libpq ones kept), for psycopg."""
    from urllib.parse import parse_qsl, urlencode, urlunsplit

    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k in _LIBPQ_URL_OPTIONS])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


class CurvestoreSystem(System):
    """curvestore on any URL; file:// stores are wiped first, others must name a fresh store
    (``{dataset}`` and ``{run}`` in the URL are replaced by the data set and an id unique to
    each setup, so every repeat gets a fresh store)."""

    name = "curvestore"
    peer = False
    calls: ClassVar[dict[str, str]] = {
        "write_many": "write_many(mapping, mode='insert')",
        "read_each": "read(key)",
        "read_many": "read_many()",
        "read_month": "read(key, start, end)",
        "update_week": "write(key, series, mode='update')",
        "bytes": "store directory (file://) or info()['payload_bytes']",
    }

    def __init__(self, url: str | None, codec: str, run_id: str,
                 keep_tables: bool = False) -> None:
        import curvestore

        self.cs = curvestore
        self.url_template = url
        self.codec = codec
        self.run_id = run_id
        self.scheme = (url or "file://").split("://", 1)[0]
        options = urlsplit(url).query if url else ""
        self.label = (f"curvestore {curvestore.__version__} ({self.scheme}, {codec}"
                      f"{', ' + options if options else ''})")
        self.store: Any = None
        self.path: Path | None = None
        self.setups = 0
        self.keep_tables = keep_tables
        self.pg_url: str | None = None  # the current PostgreSQL store's URL
        if self.scheme in ("postgresql", "postgres"):
            self.calls = {**self.calls, "bytes": "pg_total_relation_size of its 4 tables"}

    def versions(self) -> dict[str, str]:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip()
        return {"curvestore": f"{self.cs.__version__} (git {commit or '?'})"}

    def setup(self, dataset: Dataset) -> None:
        if self.url_template is None:
            self.path = WORK / dataset.name / f"curvestore-{self.codec}"
            url = self.path.as_uri()
        else:
            self.setups += 1
            url = self.url_template.format(dataset=dataset.name,
                                           run=f"{self.run_id}-r{self.setups}")
            if url.startswith(("postgresql://", "postgres://")):
                self.pg_url = url
            if url.startswith("file://"):
                self.path = Path(urlsplit(url).path)
        if self.path is not None:
            if self.path.exists() and any(self.path.iterdir()) and not (
                self.path / "manifest.json"
            ).exists():
                raise SystemExit(f"{self.path} is not empty and not a curvestore store: "
                                 "refusing to wipe it")
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store = self.cs.create_store(url, keys={"site": str, "kind": str}, freq=FREQ,
                                          tz=TZ, chunking="month", codec=self.codec)

    def write_many(self, mapping: dict[tuple[str, str], Any]) -> None:
        self.store.write_many(mapping, mode="insert")

    def read(self, key: tuple[str, str]) -> Any:
        return self.store.read(dict(zip(KEYS, key, strict=True)))

    def read_many(self) -> Iterator[tuple[tuple[str, str], Any]]:
        for key, series in self.store.read_many():
            yield tuple(key[k] for k in KEYS), series

    def read_window(self, key: tuple[str, str], start: Any, end: Any) -> Any:
        return self.store.read(dict(zip(KEYS, key, strict=True)), start=start, end=end)

    def update(self, key: tuple[str, str], series: Any) -> None:
        self.store.write(dict(zip(KEYS, key, strict=True)), series, mode="update")

    def _pg_tables(self) -> tuple[str, list[str]]:
        from urllib.parse import parse_qsl

        assert self.pg_url is not None
        options = dict(parse_qsl(urlsplit(self.pg_url).query))
        table = options.get("table", "load_curves")
        return options.get("schema", "public"), [
            table, f"{table}_manifest", f"{table}_changes", f"{table}_sync_state"]

    def bytes(self) -> Bytes:
        if self.pg_url is not None:
            import psycopg

            schema, tables = self._pg_tables()
            with psycopg.connect(pg_plain_url(self.pg_url), autocommit=True) as conn, \
                    conn.cursor() as cursor:
                sizes = pg_sizes(cursor, tables, "payload", schema)
            return Bytes(sizes.pop("total"), PG_BYTES_HOW, sizes)
        extra: dict[str, int] = {}
        with contextlib.suppress(Exception):  # info() is not part of the fixed API
            extra["payload"] = int(self.store.info()["payload_bytes"])
        if self.path is not None:
            apparent, allocated = disk_usage(self.path)
            extra["allocated"] = allocated
            return Bytes(apparent, "apparent size of the files in the store directory", extra)
        if "payload" not in extra:
            raise BenchError("cannot measure bytes: not a file:// store and no info()")
        return Bytes(extra["payload"], "chunk payload bytes from store.info()", extra)

    def teardown(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store = None
        if self.pg_url is not None and not self.keep_tables and self.url_template and \
                "{run}" in self.url_template:  # only tables this run named and created
            import psycopg

            schema, tables = self._pg_tables()
            with psycopg.connect(pg_plain_url(self.pg_url), autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS " + ", ".join(
                    f'"{schema}"."{t}"' for t in tables))
        self.pg_url = None


# -- the workload ----------------------------------------------------------------------------------
def _stats_ms(times: list[float]) -> dict[str, float]:
    arr = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(arr)), "p95_ms": float(np.percentile(arr, 95)),
            "mean_ms": float(arr.mean()), "count": len(arr)}


def month_windows(ds: Dataset, count: int, seed: int) -> list[tuple[int, Any, Any]]:
    rng = np.random.default_rng([seed, 1])
    step = pd.Timedelta(FREQ)
    out = []
    for _ in range(count):
        i = int(rng.integers(len(ds.series)))
        m = int(rng.integers(len(ds.month_starts) - 1))
        out.append((i, ds.month_starts[m], ds.month_starts[m + 1] - step))
    return out


def week_updates(ds: Dataset, seed: int) -> list[Any]:
    """For each series, 7 days of new values starting 4 days before a random month boundary."""
    rng = np.random.default_rng([seed, 2])
    updates = []
    for _ in ds.series:
        b = int(rng.integers(1, len(ds.month_starts) - 1))
        start = ds.month_starts[b] - pd.Timedelta(days=4)
        index = pd.date_range(start, periods=7 * 96, freq=FREQ).as_unit("ns")
        updates.append(pd.Series(rng.random(len(index)) + 10.0, index=index, name="value"))
    return updates


def run_system(system: System, ds: Dataset, windows: list, updates: list) -> dict[str, Any]:
    res: dict[str, Any] = {}
    n_points = ds.points
    print(f"  {system.label}: setup", flush=True)
    system.setup(ds)
    mapping = dict(zip(ds.keys, ds.series, strict=True))

    gc.collect()
    t0 = time.perf_counter()
    system.write_many(mapping)
    res["write_many_s"] = time.perf_counter() - t0
    res["after_write"] = system.after_write()
    b = system.bytes()
    res["bytes"] = {"measured": b.measured, "how": b.how, **b.extra}
    res["bytes_per_point"] = b.measured / n_points
    print(f"    write_many {res['write_many_s']:.3f} s, {res['bytes_per_point']:.2f} B/point",
          flush=True)

    gc.collect()
    total = 0.0
    for key, expected in mapping.items():
        t0 = time.perf_counter()
        got = system.read(key)
        total += time.perf_counter() - t0
        check_same(got, expected, f"{system.name} read {key}")
    res["read_each_s"] = total

    gc.collect()
    total = 0.0
    seen: set[tuple[str, str]] = set()
    iterator = iter(system.read_many())
    while True:
        t0 = time.perf_counter()
        try:
            key, got = next(iterator)
        except StopIteration:
            total += time.perf_counter() - t0
            break
        total += time.perf_counter() - t0
        if key in seen or key not in mapping:
            raise BenchError(f"{system.name} read_many: unexpected or repeated key {key}")
        seen.add(key)
        check_same(got, mapping[key], f"{system.name} read_many {key}")
    if len(seen) != len(mapping):
        raise BenchError(f"{system.name} read_many: {len(seen)} series, {len(mapping)} written")
    res["read_many_s"] = total
    print(f"    read_each {res['read_each_s']:.3f} s, read_many {res['read_many_s']:.3f} s",
          flush=True)

    gc.collect()
    times = []
    for i, start, end in windows:
        t0 = time.perf_counter()
        got = system.read_window(ds.keys[i], start, end)
        times.append(time.perf_counter() - t0)
        check_same(got, ds.series[i].loc[start:end], f"{system.name} month {ds.keys[i]} {start}")
    res["read_month"] = _stats_ms(times)

    gc.collect()
    times = []
    for key, upd in zip(ds.keys, updates, strict=True):
        t0 = time.perf_counter()
        system.update(key, upd)
        times.append(time.perf_counter() - t0)
    res["update_week"] = _stats_ms(times)
    for key, expected, upd in zip(ds.keys, ds.series, updates, strict=True):
        want = expected.copy()
        want.loc[upd.index] = upd.to_numpy()
        check_same(system.read(key), want, f"{system.name} read after update {key}")
    b = system.bytes()
    res["bytes_after_update"] = {"measured": b.measured, **b.extra}
    print(f"    month read median {res['read_month']['median_ms']:.2f} ms, update median "
          f"{res['update_week']['median_ms']:.2f} ms; all reads verified", flush=True)
    system.teardown()
    return res


def median_of(runs: list[Any]) -> Any:
    """The per-number median of several results of the same shape."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_of([r[k] for r in runs]) for k in first}
    if isinstance(first, int | float) and not isinstance(first, bool):
        return float(np.median(runs))
    return first


# -- report ----------------------------------------------------------------------------------------
def machine_info() -> dict[str, str]:
    cpu = "unknown"
    ram = "unknown"
    with contextlib.suppress(OSError):  # not Linux: leave "unknown"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    fs = "unknown"
    with contextlib.suppress(OSError):
        best = ""
        work = str(WORK.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mnt, kind, *_ = line.split()
            if (work == mnt or work.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, fs = mnt, kind
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "filesystem of bench/.work": fs,
    }


ROWS = [  # (result path, label, format)
    (("write_many_s",), "write_many, all series (s)", "{:.3f}"),
    (("read_each_s",), "full read of each series, total (s)", "{:.3f}"),
    (("read_many_s",), "read_many over all series (s)", "{:.3f}"),
    (("read_month", "median_ms"), "1-month read, median (ms)", "{:.2f}"),
    (("read_month", "p95_ms"), "1-month read, p95 (ms)", "{:.2f}"),
    (("update_week", "median_ms"), "1-week update, median (ms)", "{:.2f}"),
    (("update_week", "p95_ms"), "1-week update, p95 (ms)", "{:.2f}"),
    (("bytes_per_point",), "bytes per point on disk", "{:.2f}"),
]

# (label, dataset or None for all, metric path, peer, kind, threshold)
#   kind "throughput": peer_time / time >= threshold; "latency"/"size": value / peer <= threshold
TARGETS = [
    ("write_many >= 0.5x ArcticDB write_batch throughput", None, ("write_many_s",), "arcticdb",
     "throughput", 0.5),
    ("write_many >= 5x holcstore set_many_ts throughput", None, ("write_many_s",), "holcstore",
     "throughput", 5.0),
    ("full reads >= 1.5x ArcticDB read throughput", None, ("read_each_s",), "arcticdb",
     "throughput", 1.5),
    ("read_many >= 1.5x ArcticDB read_batch throughput", None, ("read_many_s",), "arcticdb",
     "throughput", 1.5),
    ("1-month read median <= 0.3x ArcticDB", None, ("read_month", "median_ms"), "arcticdb",
     "latency", 0.3),
    ("1-week update median <= 0.5x ArcticDB", None, ("update_week", "median_ms"), "arcticdb",
     "latency", 0.5),
    ("bytes/point on random data <= holcstore", "random", ("bytes_per_point",), "holcstore",
     "size", 1.0),
]


# PostgreSQL runs: curvestore on PostgreSQL against holcstore on the same server (issue 3)
TARGETS_PG = [
    ("write_many >= 8x holcstore set_many_ts throughput", None, ("write_many_s",), "holcstore",
     "throughput", 8.0),
    ("full reads >= 4x holcstore get_ts throughput", None, ("read_each_s",), "holcstore",
     "throughput", 4.0),
    ("read_many >= 4x holcstore yield_many_ts throughput", None, ("read_many_s",), "holcstore",
     "throughput", 4.0),
    ("1-month read median <= 0.4x holcstore", None, ("read_month", "median_ms"), "holcstore",
     "latency", 0.4),
    ("1-month read p95 <= 0.4x holcstore", None, ("read_month", "p95_ms"), "holcstore",
     "latency", 0.4),
    ("1-week update median <= 0.25x holcstore", None, ("update_week", "median_ms"),
     "holcstore", "latency", 0.25),
    ("bytes/point <= holcstore", None, ("bytes_per_point",), "holcstore", "size", 1.0),
]


def api_table(api: dict[str, dict[str, str]]) -> list[str]:
    """The markdown table of each system's call per operation (``api``: label -> calls)."""
    lines = ["| operation | " + " | ".join(api) + " |", "|" + " --- |" * (len(api) + 1)]
    for op in ["write_many", "read_each", "read_many", "read_month", "update_week", "bytes"]:
        lines.append(f"| {op} | " + " | ".join(f"`{calls.get(op, '')}`"
                                                for calls in api.values()) + " |")
    return lines


def verdict(kind: str, ours: float, theirs: float, threshold: float) -> tuple[float, bool]:
    """(ratio, met) of a target: a throughput ratio is peer time / our time (at least
    ``threshold``), any other ratio is ours / the peer's (at most ``threshold``)."""
    if kind == "throughput":
        return theirs / ours, theirs / ours >= threshold
    return ours / theirs, ours / theirs <= threshold


def _get(res: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = res
    for p in path:
        value = value[p]
    return float(value)


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    pg = bool(meta.get("postgres"))
    targets = TARGETS_PG if pg else TARGETS
    title = "# curvestore benchmark results" + (" on PostgreSQL" if pg else "")
    results_name = "results-postgres.json" if pg else "results.json"
    lines = [title, "",
             f"Generated by `{' '.join(['python bench/run.py', *meta['argv']])}` on {meta['date']} "
             f"(run {meta['run_id']}, {meta['elapsed_s']:.0f} s). Do not edit by hand: rerun.",
             "", "## Machine and versions", ""]
    lines += [f"- {k}: {v}" for k, v in meta["machine"].items()]
    lines += [f"- {k}: {v}" for k, v in meta["versions"].items()]
    w = meta["workload"]
    lines += ["", "## Workload", "",
              f"{w['n']} series x {w['start']} to {w['end']} (local, end excluded) at {FREQ} in "
              f"{TZ}, float64, month chunks: {w['points_per_series']} points per series, "
              f"{w['points']} in all. Keys (site, kind). Each system starts from a fresh store "
              "and gets the same pandas Series objects. Every number is the median of "
              f"{w['repeat']} runs of the whole workload (systems interleaved, fresh stores "
              f"each time; all runs are in bench/.work/{results_name}). Times are wall-clock "
              "(`time.perf_counter`) around the public API calls only, single process, warm page "
              "cache; every read (full, batch, window, after update) is compared with the input "
              "(same instants, bit-identical float64) and the run fails on any difference.",
              "",
              f"- 1-month reads: {w['month_reads']} random (series, calendar month) windows, the "
              "same for every system, bounds `[month start, next month start - 15min]`.",
              "- 1-week updates: one per series, 672 new values starting 4 days before a random "
              "month boundary (so each update touches two month chunks).",
              "- bytes per point: measured right after write_many, divided by the points "
              "written; see the notes below for what each system counts.",
              "- ratios are *system / peer* on the row's own number (time or bytes): below 1 "
              "means faster or smaller than the peer.", "",
              *api_table(meta["api"])]

    for ds_name, ds in results["datasets"].items():
        systems = ds["systems"]
        labels = {name: r["label"] for name, r in systems.items()}
        peers = [p for p in PEERS if p in systems]
        others = [s for s in systems if s not in PEERS]
        ratio_cols = [(o, p) for o in others for p in peers]
        lines += ["", f"## Data set `{ds_name}`: {ds['description']}", ""]
        head = ["operation", *[labels[s] for s in systems],
                *[f"{o} / {p}" for o, p in ratio_cols]]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + " --- |" + " ---: |" * (len(head) - 1))
        for path, label, fmt in ROWS:
            cells = [fmt.format(_get(systems[s]["result"], path)) for s in systems]
            for o, p in ratio_cols:
                peer_v = _get(systems[p]["result"], path)
                cells.append(f"{_get(systems[o]['result'], path) / peer_v:.2f}x"
                             if peer_v else "-")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", "Bytes on disk:", ""]
        for s, r in systems.items():
            b = r["result"]["bytes"]
            after = r["result"]["bytes_after_update"]
            extra = ", ".join(f"{k} {v / ds['points']:.2f} B/point" for k, v in b.items()
                              if k not in ("measured", "how"))
            lines.append(f"- {labels[s]}: {b['how']} ({extra}); after the updates "
                         f"{after['measured'] / ds['points']:.2f} B/point.")
        facts = [(labels[s], r["result"].get("after_write") or {}) for s, r in systems.items()]
        facts = [(label, f) for label, f in facts if f]
        if facts:
            lines += ["", "Untimed, right after write_many:", ""]
            lines += [f"- {label}: " + ", ".join(
                f"{k.removesuffix('_s')} {v:.2f} s" if k.endswith("_s") else f"{k} {v:g}"
                for k, v in f.items()) for label, f in facts]

    curvestores = sorted({s for ds in results["datasets"].values() for s in ds["systems"]
                          if s not in PEERS})
    if curvestores:
        lines += ["", "## Targets", "",
                  "Throughput ratios are peer time / curvestore time (higher is better); "
                  "latency and size ratios are curvestore / peer (lower is better).", ""]
        ds_names = list(results["datasets"])
        for s in curvestores:
            label = next(ds["systems"][s]["label"] for ds in results["datasets"].values()
                         if s in ds["systems"])
            lines += [f"### {label}", "", "| target | " + " | ".join(ds_names) + " |",
                      "| --- |" + " --- |" * len(ds_names)]
            for tlabel, only, path, peer, kind, threshold in targets:
                cells = []
                for d in ds_names:
                    sysres = results["datasets"][d]["systems"]
                    if (only and d != only) or s not in sysres or peer not in sysres:
                        cells.append("-")
                        continue
                    mine = _get(sysres[s]["result"], path)
                    theirs = _get(sysres[peer]["result"], path)
                    ratio, ok = verdict(kind, mine, theirs, threshold)
                    cells.append(f"{ratio:.2f}x **{'pass' if ok else 'MISS'}**")
                lines.append(f"| {tlabel} | " + " | ".join(cells) + " |")
            lines.append("")
    if pg:
        lines += ["", "## Where the time goes (PostgreSQL backend)", "", ANALYSIS_PG]
        lines += ["", "## Notes", ""] + [f"- {n}" for n in NOTES_PG]
        return "\n".join(lines) + "\n"
    lines += ["", "## Where the time goes (filesystem backend)", "", ANALYSIS]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in NOTES]
    # The other benchmarks keep their own files (each regenerated by its own script); their
    # latest results are folded in here so RESULTS.md is the one page to read.
    for name, title in FOLDED.items():
        extra = BENCH / f"RESULTS-{name}.md"
        if extra.exists():
            lines += ["", _folded_section(title, extra.read_text()).rstrip("\n")]
    return "\n".join(lines) + "\n"



#: The benchmarks whose RESULTS-<name>.md is folded into RESULTS.md, with their headings.
FOLDED = {
    "codecs": "Codecs and byte-shuffle (`python bench/codecs.py`)",
    "postgres": "PostgreSQL backend vs holcstore on PostgreSQL (`python bench/run.py --postgres`)",
    "sync": "Replication (`python bench/sync.py`)",
    "s3": "S3 backend and archival (`python bench/s3.py`)",
    "django": "Django adapter vs holcstore on PostgreSQL (`python bench/django_adapter.py`)",
}


def _folded_section(title: str, text: str) -> str:
    """A RESULTS-<name>.md page as a section of RESULTS.md (its headings one level down)."""
    body = text.split("\n", 1)[1]
    body = body.replace("\n#### ", "\n##### ").replace("\n### ", "\n#### ")
    return f"## {title}\n\n" + body.replace("\n## ", "\n### ").strip() + "\n"


def fold_into_results_md(name: str) -> None:
    """Refresh one folded benchmark's section of bench/RESULTS.md from its RESULTS-<name>.md,
    leaving the rest of the file as its last run wrote it."""
    main, page, title = BENCH / "RESULTS.md", BENCH / f"RESULTS-{name}.md", FOLDED[name]
    if not main.exists() or not page.exists():
        return
    section = _folded_section(title, page.read_text())
    text = main.read_text()
    start = text.find(f"\n## {title}\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        after = text.find("\n## ", start + 1)
        text = text[:start + 1] + section + ("" if after < 0 else "\n" + text[after + 1:])
    main.write_text(text)
    print(f"refreshed its section of {main}")

NOTES = [
    "Durability is comparable: ArcticDB's LMDB store fdatasyncs its commits, Django's SQLite "
    "runs with SQLite's defaults (rollback journal, synchronous=FULL) and curvestore's file "
    "backend fsyncs by default (`?fsync=false` in a `--url` turns that off).",
    "ArcticDB: library created with default options on `lmdb://` (its C++ thread pools use both "
    "cores); `update` keeps the previous version (ArcticDB's default, no pruning), which shows "
    "in the after-update bytes. `read_many` includes a `list_symbols()` call, since the other "
    "systems' bulk reads find the series themselves; but the first `list_symbols()` after the "
    "writes compacts the symbol list under a storage lock and takes about 1 s whatever N, so it "
    "is made once, untimed, right after write_many (its time is listed below). An `update` "
    "rewrites the whole 100,000-row segment it lands in, so its cost depends on where the week "
    "falls: about 7 ms mid-series here, about 3 ms in the short last segment, about 5.7 ms with "
    "`prune_previous_versions=True`; the weeks here fall at random month boundaries. Bytes: "
    "data.mdb files (lock.mdb excluded); `allocated` is the blocks du counts.",
    "holcstore: a concrete `TimeseriesChunkStore` model (bench/hostore_bench), Django configured "
    "in-process on a SQLite file in bench/.work, table made with the schema editor. "
    "`set_many_ts` needs the key *names* (`keys=`) next to a mapping keyed by value tuples, and "
    "raises IntegrityError over existing data; `get_ts` bounds are inclusive; `yield_many_ts` "
    "yields `(series, attrs)`. Bytes: size of a `VACUUM INTO` copy of the database (so free "
    "pages do not count); `payload` is `sum(length(data))` of the lz4 blobs.",
    "curvestore: `file://` store under bench/.work; bytes are the apparent sizes of all files "
    "in the store directory (manifest, log, locks included); `allocated` counts 512-byte "
    "blocks like du; `payload` is the chunk bytes from `store.info()`.",
]


ANALYSIS = """\
The file backend stores one shard file per series and calendar year (12 month chunks, an index
at the end; see curvestore/backends/_shards.py): write_many creates 150 files instead of
1,800, which is what moved write_many from 0.31x to 0.5-2.2x ArcticDB's throughput (creating
1,800 files had cost 0.07-1.0 s on this VM's ext4, mostly ext4 inode allocation after many
deletions, seen with perf as find_inode_bit / recently_deleted).

The ratios against ArcticDB depend on the machine's load more than curvestore's times do:
ArcticDB's C++ thread pools use both cores when they are free, so on a quiet machine its reads
are up to ~2x faster than under a load average of 2-3, while curvestore (one Python thread)
stays within ~10%. Measured back to back, the old one-file-per-chunk layout and the shards read
at the same speed; what made reads faster was the decode path: the LZ4 module, dtype objects
and little-endian dtypes are now looked up once instead of once per chunk, which cut the CPU
of reading 50 x 36 chunks by ~35% (read_many 0.117 s -> 0.074 s on random data, same machine,
back to back).

Since the previous recorded run (10:07 UTC), the payload CRC-32 is computed with ISA-L and a
result's NaN bounds are only scanned when one of its ends is NaN: full reads, which missed on
load curves (1.42x), pass in both runs today (2.05x / 1.89x at 11:43, 1.64x / 1.94x at 11:44
UTC, the tables above).

- **write_many against holcstore** (target 5x; 3.94x / 5.53x at 11:43, 5.15x / 4.12x at
  11:44; 5.20x / 5.52x at 10:07). It is CPU-bound in one thread (wall time equals process CPU
  time within 10%), and the same write of 50 random series took 0.15-0.37 s of CPU across
  runs minutes apart, which is the whole margin: validation and splitting (~0.05 s), LZ4 and
  CRC-32 (~0.04 s), trimming and framing (~0.05 s), the shard files and their JSON indexes
  (~0.09 s), fsync (~0.03 s). Encoding the next series on a worker thread while the backend
  stores the current one was measured (5 writes x 2 runs each way) and gained nothing: the
  work is mostly Python holding the GIL. What would close it for good: a binary shard index
  instead of JSON and fewer Python objects per chunk on the write path.
"""


NOTES_PG = [
    "Both systems use the same PostgreSQL server in the same run, over TCP on 127.0.0.1, with "
    "the server's durability defaults (fsync on, synchronous_commit on): every commit waits "
    "for its WAL flush.",
    "holcstore: the concrete `TimeseriesChunkStore` model of bench/hostore_bench through Django's "
    "`postgresql` engine (psycopg 3), table dropped and re-created with the schema editor for "
    "every run; its `data` column is a plain `bytea` (storage EXTENDED, so PostgreSQL tries "
    "pglz on its lz4 blobs before giving up); writes go through `bulk_create` in batches of 200 "
    "rows, reads through the ORM (`yield_many_ts` uses a server-side cursor via "
    "`QuerySet.iterator`).",
    "curvestore: `postgresql://` store, one fresh table per run (`table=bench_{dataset}_{run}`, "
    "dropped after the run unless `--keep-tables`); payload column storage EXTERNAL (no "
    "pglz); writes are one binary COPY per commit; single-series reads are one query; "
    "read_many is a server-side cursor.",
    "Bytes are `pg_total_relation_size` (heap + TOAST + indexes + free-space and visibility "
    "maps) measured without VACUUM; for curvestore they sum its four tables (chunks, manifest, "
    "change feed, sync state), the change feed included. After the updates both carry dead "
    "row versions until autovacuum runs, which is why the after-update numbers grow.",
    "ArcticDB has no PostgreSQL storage: when listed it runs on LMDB as in bench/RESULTS.md, "
    "for reference only; the targets are against holcstore on PostgreSQL.",
]

# Written from the profiles and runs described in it; re-render with --render-only.
ANALYSIS_PG = """\
**Conditions.** A quiet machine (load average ~0.9 on 2 vCPUs), both systems on one
PostgreSQL 15 server, 3 interleaved repeats (medians above). Two full runs today, 11:35 and
11:42 UTC; the tables are the second. The earlier recorded run (load 3-4.7) missed five
targets; since then the 1-week update and the 1-month reads pass with margin, and the bulk
targets sit at or just around their lines.

**1-week update: 0.12x / 0.13x (target 0.25x; was 0.93x / 0.32x under load, 0.18x / 0.30x
quiet).** A commit of a few chunks whose rows the transaction read (locked, so their versions
are known) now goes out as plain INSERT / `UPDATE ... RETURNING` / change-row INSERT
statements in ONE pipeline, instead of three binary COPYs and a staged UPDATE (about six round
trips). An update is now BEGIN, the advisory locks (one pipelined round trip), `SELECT ... FOR
UPDATE` of the two chunks, that pipeline and COMMIT: median 1.8-1.9 ms against holcstore's
15.2 ms. A row that vanished from under the lock would raise ConflictError, not pass silently.

**write_many: 8.17x random, 7.33x load (target 8x).** Per repeat: random 0.391 / 0.338 /
0.379 s against holcstore's 3.10 / 2.89 / 3.28 s; load 0.356 / 0.263 / 0.408 s against 2.39 /
2.61 / 2.69 s, so the load verdict flips with the repeat (7.3x median, 10x at best). COPYs now
go through psycopg's queued writer (a thread sends series k while the core encodes series k+1:
0.41-0.52 s -> 0.32-0.42 s on random data in 5 runs each). The floor is the server: a bare
binary COPY of the same 42 MB into a 3-column bytea table takes 0.18-0.30 s here (140-240
MB/s: TOAST rows and WAL for every byte), and the client still spends 0.14-0.21 s of CPU
(validation, split, LZ4, CRC) that only partly overlaps it on two cores.

**Reads: full reads 4.31x / 3.30x (target 4x), read_many 7.48x / 4.06x (target 4x).** On load
curves the per-series read is ~3 ms (one query: the server detoasts 36 rows, the client
decodes 36 LZ4 blocks and assembles 105,216 points with their index) against holcstore's
~9.7 ms, and holcstore's own times vary 0.44-0.78 s between repeats, so this ratio moves by
+-20% from run to run (4.46x in the 11:35 run). Common to all backends since the last
recorded run: CRC-32 through ISA-L, one lookup of the codec module and dtypes per call, and no
NaN scan when a result's ends are valid.

**Bytes per point: 1.00x / 1.18x (target <= holcstore), missed by design of the default
codec.** Random: both store 8.46 B/point of TOAST; curvestore adds its change feed and wider
heap rows (heap 0.08 vs 0.04 B/point) and has smaller indexes (0.05 vs 0.07): 8.60 against
8.57. Load: curvestore's LZ4 payload is already 2.57 B/point, more than holcstore's whole
table (2.48), because holcstore's `bytea` is EXTENDED and PostgreSQL pglz-compresses its LZ4
blobs a further ~10% at the write-speed cost the issue warns against; curvestore's payload is
EXTERNAL. With `codec=zstd` (a store option) the same command (`--codec zstd`, 11:43 UTC)
gives 8.26 vs 8.57 B/point (0.96x) and 1.49 vs 2.48 (0.60x), both passes, but zstd's slower
encoding and decoding cost the speed targets: write_many 6.97x / 5.38x, full reads 3.28x /
3.61x, read_many 4.37x / 3.69x, while the 1-month read (0.24x / 0.17x) and update (0.16x /
0.19x) still pass. LZ4 stays the default: speed first, zstd or pcodec for archives.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="arcticdb,holcstore,curvestore",
                    help="comma-separated: arcticdb, holcstore, curvestore (default: all)")
    ap.add_argument("--datasets", default="random,load", help="comma-separated: random, load")
    ap.add_argument("--n", type=int, default=50, help="number of series (default 50)")
    ap.add_argument("--years", type=int, default=3, help="years of data from --start (3)")
    ap.add_argument("--start", default="2022-01-01", help="first local day (2022-01-01)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--month-reads", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3,
                    help="run the whole workload this many times on fresh stores, systems "
                         "interleaved, and report the median of each number (3)")
    ap.add_argument("--url", action="append", default=None,
                    help="curvestore store URL (repeatable: one curvestore system per URL); "
                         "'{dataset}' and '{run}' are substituted; default: a file:// store "
                         "under bench/.work")
    ap.add_argument("--codec", default="lz4", help="curvestore codec (lz4)")
    ap.add_argument("--output", default=None,
                    help="results file (default bench/RESULTS.md, bench/RESULTS-postgres.md "
                         "for PostgreSQL runs)")
    ap.add_argument("--postgres", action="store_true",
                    help="run holcstore and curvestore on PostgreSQL: the server of the "
                         "postgresql:// --url, else a throw-away server started here")
    ap.add_argument("--keep-tables", action="store_true",
                    help="keep the PostgreSQL tables each curvestore run created")
    ap.add_argument("--render-only", metavar="RESULTS_JSON",
                    help="only re-render a results JSON file into --output")
    ap.add_argument("--skip-install", action="store_true",
                    help="reuse bench/.venv without installing anything")
    return ap.parse_args(argv)


def _is_pg(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def _pg_server_facts(url: str, started_here: bool) -> dict[str, str]:
    import psycopg

    with psycopg.connect(pg_plain_url(url), autocommit=True) as conn:
        settings = dict(conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
            "('server_version', 'shared_buffers', 'fsync', 'synchronous_commit', "
            "'default_toast_compression', 'wal_level')").fetchall())
    facts = {"PostgreSQL": settings.pop("server_version", "?"),
             "PostgreSQL server": ("started by the bench (initdb into a temp dir, 127.0.0.1, "
                                   "trust auth; durability defaults)" if started_here
                                   else "given by --url")}
    facts["PostgreSQL settings"] = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    return facts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:  # re-render a results file (e.g. after editing the analysis text)
        results = json.loads(Path(args.render_only).read_text())
        output = args.output or str(BENCH / ("RESULTS-postgres.md" if results["meta"].get(
            "postgres") else "RESULTS.md"))
        Path(output).write_text(render(results))
        print(f"wrote {output}")
        if Path(output).resolve() == BENCH / "RESULTS-postgres.md":
            fold_into_results_md("postgres")
        return 0
    ensure_env(args.skip_install)
    _import_common()
    pg_url = next((u for u in args.url or [] if _is_pg(u)), None)
    if not (args.postgres or pg_url):
        return bench(args, None, False)
    if pg_url is not None:
        return bench(args, pg_url, False)
    from curvestore.testing.postgres_server import postgres_server

    with postgres_server(shared_buffers="256MB") as server:
        url = server + ("&" if "?" in server else "?") + "table=bench_{dataset}_{run}"
        args.url = [*(args.url or []), url]
        return bench(args, url, True)


def bench(args: argparse.Namespace, pg_url: str | None, started_here: bool) -> int:
    """Run the workload; with ``pg_url``, holcstore runs on that PostgreSQL server."""
    started = time.perf_counter()
    run_id = time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(wanted) - {"arcticdb", "holcstore", "curvestore"}
    if unknown:
        raise SystemExit(f"unknown systems {sorted(unknown)}")
    output = args.output or str(BENCH / ("RESULTS-postgres.md" if pg_url else "RESULTS.md"))
    results_json = WORK / ("results-postgres.json" if pg_url else "results.json")

    systems: list[System] = []
    if "arcticdb" in wanted:
        systems.append(ArcticDBSystem())
    if "holcstore" in wanted:
        systems.append(HolcstoreSystem(pg_url))
    if "curvestore" in wanted:
        urls = args.url or [None]
        for number, url in enumerate(urls, 1):
            cs = CurvestoreSystem(url, args.codec, run_id, keep_tables=args.keep_tables)
            if len(urls) > 1:
                cs.name = f"curvestore#{number}"
                cs.label += f" #{number}"
            systems.append(cs)

    start = pd.Timestamp(args.start)
    end = (start + pd.DateOffset(years=args.years)).strftime("%Y-%m-%d")
    versions = {"numpy": np.__version__, "pandas": pd.__version__}
    for s in systems:
        versions.update(s.versions())
    if pg_url:
        versions.update(_pg_server_facts(pg_url, started_here))
    results: dict[str, Any] = {"datasets": {}}
    n_points = 0
    for ds_name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        ds = make_dataset(ds_name, args.n, args.start, end, args.seed)
        n_points = len(ds.series[0])
        print(f"data set {ds_name}: {len(ds.series)} series x {n_points} points", flush=True)
        windows = month_windows(ds, args.month_reads, args.seed)
        updates = week_updates(ds, args.seed)
        entry: dict[str, Any] = {"description": ds.description, "points": ds.points,
                                 "systems": {}}
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems}
        for rep in range(args.repeat):  # interleaved, so that slow spells hit every system
            if args.repeat > 1:
                print(f" repeat {rep + 1}/{args.repeat}", flush=True)
            for system in systems:
                runs[system.name].append(run_system(system, ds, windows, updates))
        for system in systems:
            entry["systems"][system.name] = {"label": system.label,
                                             "result": median_of(runs[system.name]),
                                             "runs": runs[system.name]}
        results["datasets"][ds_name] = entry
        del ds, windows, updates
        gc.collect()

    results["meta"] = {
        "postgres": bool(pg_url),
        "argv": sys.argv[1:],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "run_id": run_id,
        "elapsed_s": time.perf_counter() - started,
        "machine": machine_info(),
        "versions": versions,
        "workload": {"n": args.n, "start": args.start, "end": end,
                     "points_per_series": n_points, "points": n_points * args.n,
                     "month_reads": args.month_reads, "repeat": args.repeat},
        "api": {s.label: s.calls for s in systems},
    }
    WORK.mkdir(parents=True, exist_ok=True)
    results_json.write_text(json.dumps(results, indent=2, default=str))
    Path(output).write_text(render(results))
    print(f"wrote {output} and {results_json}")
    if Path(output).resolve() == BENCH / "RESULTS-postgres.md":
        fold_into_results_md("postgres")
    return 0


if __name__ == "__main__":
    sys.exit(main())
