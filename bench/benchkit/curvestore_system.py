"""curvestore as a benchmarked system, on any store URL."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from .env import REPO, WORK
from .postgres import PG_BYTES_HOW, pg_plain_url, pg_sizes
from .system import FREQ, KEYS, TZ, BenchError, Bytes, Dataset, System, disk_usage

#: The chunk table's payload column in the stores the bench creates (new stores prefix the
#: backend's own columns with "_", so that any key name is free).
PG_PAYLOAD_COLUMN = "_payload"


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
            self.calls = {**self.calls, "bytes": "pg_total_relation_size of its tables"}

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
        assert self.pg_url is not None
        options = dict(parse_qsl(urlsplit(self.pg_url).query))
        table = options.get("table", "load_curves")
        return options.get("schema", "public"), [
            table, f"{table}_manifest", f"{table}_changes", f"{table}_sync_state",
            f"{table}_fragments"]

    def bytes(self) -> Bytes:
        if self.pg_url is not None:
            import psycopg

            schema, tables = self._pg_tables()
            with psycopg.connect(pg_plain_url(self.pg_url), autocommit=True) as conn, \
                    conn.cursor() as cursor:
                sizes = pg_sizes(cursor, tables, PG_PAYLOAD_COLUMN, schema)
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
