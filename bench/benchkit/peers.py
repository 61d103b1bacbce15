"""The peers curvestore is measured against: ArcticDB on LMDB and holcstore (Django) on SQLite
or PostgreSQL. Each is driven through its public API only; its module is imported in the
constructor, so this module loads without them."""

from __future__ import annotations

import gc
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from .env import BENCH, WORK, package_version
from .postgres import PG_BYTES_HOW, django_postgres, pg_sizes
from .system import KEYS, BenchError, Bytes, Dataset, System, disk_usage


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


def setup_django(db_path: Path, pg_url: str | None = None) -> None:
    """Configure Django in-process for holcstore's bench app, unless a script already did."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=["hostore", "hostore_bench"],
        DATABASES={"default": django_postgres(pg_url) if pg_url else
                   {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db_path)}},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()


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
        setup_django(self.db_path, pg_url)
        import django
        from hostore_bench.models import BenchLoadCurve

        self.model = BenchLoadCurve
        self.django = django
        engine = "PostgreSQL" if self.pg else "SQLite"
        self.label = (f"holcstore {package_version('holcstore')} (Django {django.__version__}, "
                      f"{engine})")
        if self.pg:
            self.calls = {**self.calls, "bytes": "pg_total_relation_size(table)"}

    def versions(self) -> dict[str, str]:
        if self.pg:
            import psycopg

            return {"holcstore": package_version("holcstore"),
                    "Django": self.django.__version__, "psycopg": psycopg.__version__}
        import sqlite3

        return {"holcstore": package_version("holcstore"), "Django": self.django.__version__,
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
