"""The S3 backend proper, put together from its parts: the shared state (:mod:`._base`), the
optimistic transaction (:mod:`._transaction`), the commit protocol and recovery
(:mod:`._commit`) and the change feed (:mod:`._feed`); the manifest and the reads (through
:class:`~curvestore.backends.s3._reader.ShardReader`) are here.

See the package docstring (:mod:`curvestore.backends.s3`) for the guarantees.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from curvestore.backends.s3._client import load_boto3
from curvestore.backends.s3._commit import S3Commit
from curvestore.backends.s3._feed import S3Feed
from curvestore.backends.s3._object_shard_format import default_shard_size
from curvestore.backends.s3._transaction import S3Transaction
from curvestore.core.backend import Transaction
from curvestore.core.config import StoreConfig
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.url import StoreURL
from curvestore.errors import ConfigurationError, ConflictError, IntegrityError, StoreExistsError

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema

__all__ = ["S3Backend"]

_OPTIONS = frozenset({"endpoint_url", "region", "profile", "max_workers", "list_page_size",
                      "pending_grace", "single_writer", "shard"})
_MAX_SHARD = 1200
#: The manifest.json field holding the backend's own layout settings (the shard size).
_MANIFEST_FIELD = "s3"


def _int_option(options: Mapping[str, str], name: str, default: int, low: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"option {name} must be an integer, got {raw!r}") from None
    if value < low:
        raise ConfigurationError(f"option {name} must be at least {low}, got {value}")
    return value


class S3Backend(S3Commit, S3Feed):
    """Shards of chunks as objects in an S3 bucket; see :mod:`curvestore.backends.s3`."""

    schemes = ("s3-shards",)

    @classmethod
    def check_available(cls) -> None:
        load_boto3()

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> S3Backend:
        url.reject_unknown_options(_OPTIONS)
        if url.username is not None or url.password is not None or "@" in url.netloc:
            raise ConfigurationError(
                "s3:// URLs take no credentials: boto3 finds them (environment, AWS_PROFILE or "
                "profile=, instance role)")
        options = url.options
        single = options.get("single_writer", "false").lower()
        if single not in ("true", "false", "1", "0"):
            raise ConfigurationError(f"single_writer must be true or false, got {single!r}")
        grace = options.get("pending_grace", "60")
        try:
            pending_grace = float(grace)
        except ValueError:
            raise ConfigurationError(f"pending_grace must be seconds, got {grace!r}") from None
        if pending_grace < 0:
            raise ConfigurationError("pending_grace must not be negative")
        shard = None
        if "shard" in options:
            shard = _int_option(options, "shard", 0, 1)
            if shard > _MAX_SHARD:
                raise ConfigurationError(f"option shard must be at most {_MAX_SHARD}, "
                                         f"got {shard}")
        return cls(
            url.netloc, url.path,
            endpoint_url=options.get("endpoint_url") or None,
            region=options.get("region") or None,
            profile=options.get("profile") or None,
            max_workers=_int_option(options, "max_workers", 16, 1),
            list_page_size=min(_int_option(options, "list_page_size", 1000, 1), 1000),
            pending_grace=pending_grace,
            single_writer=single in ("true", "1"),
            shard=shard,
            read_only=read_only,
        )

    # -- manifest ------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        """The store's manifest; the S3 layout settings stored beside it (``"s3"``: the shard
        size) are kept by the backend, not returned."""
        got = self.client.get(self.root + "manifest.json")
        if got is None:
            return None
        try:
            manifest = json.loads(got[0])
        except ValueError as exc:
            raise IntegrityError(f"{self!r}: unreadable manifest") from exc
        if not isinstance(manifest, dict):
            raise IntegrityError(f"{self!r}: unreadable manifest")
        settings = manifest.pop(_MANIFEST_FIELD, None)
        try:
            size = int(settings["shard"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise ConfigurationError(
                f"{self!r}: the store has no S3 shard layout (written by an older curvestore, "
                "one object per chunk); it cannot be read by this version") from None
        if size < 1:
            raise IntegrityError(f"{self!r}: invalid shard size {size} in the manifest")
        if self.shard_option is not None and self.shard_option != size:
            raise ConfigurationError(
                f"this store was created with shard={size} (chunks per object), not "
                f"shard={self.shard_option}; omit the option or give the store's value")
        self.reader.size = size
        self._recover_at_bind = not self.read_only
        return manifest

    def bind(self, schema: KeySchema) -> None:
        """Learn the key schema; a store opened for writing then recovers interrupted
        commits (one LIST of ``pending/``)."""
        super().bind(schema)
        self.reader.schema = schema
        if self._recover_at_bind:
            self._recover_at_bind = False
            self._recover(force=True)

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        size = self.shard_option
        if size is None:
            config = StoreConfig.from_manifest(manifest)
            size = default_shard_size(config.chunking, config.freq_ns)
        stored = {**manifest, _MANIFEST_FIELD: {"shard": size}}
        body = (json.dumps(stored, indent=2, sort_keys=True) + "\n").encode()
        try:
            self.client.put(self.root + "manifest.json", body,
                            if_none_match=not self.single_writer)
        except ConflictError as exc:
            raise StoreExistsError(f"a store already exists at {self!r}") from exc
        self.reader.size = size
        self.log.created()

    # -- reads ---------------------------------------------------------------------------------
    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        return [r for shard in self.reader.series(key, lo, hi) for r in shard.records(lo, hi)]

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        wanted = list(dict.fromkeys((key, self.reader.number(chunk)) for key, chunk in refs))
        shards = dict(zip(wanted, self.reader.get_many(wanted), strict=True))
        out = []
        for key, chunk in refs:
            shard = shards[(key, self.reader.number(chunk))]
            entry = None if shard is None else shard.entries.get(chunk)
            if shard is None or entry is None or entry.meta.deleted:
                out.append(ChunkRecord(key, ChunkMeta(chunk=chunk, deleted=True)))
            else:
                out.append(shard.record(chunk))
        return out

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        if lo is not None and hi is not None and hi < lo:
            return
        for key, shards in self.reader.stream(where, lo, hi, index_only=False):
            records = [r for shard in shards for r in shard.records(lo, hi)]
            if records:
                yield key, records

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        for key, shards in self.reader.stream(where, None, None, index_only=True):
            metas = [m for shard in shards for m in shard.metas() if not m.deleted]
            if metas:
                yield key, metas

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        """A series whose shards hold only tombstones has no live chunk, so this needs the
        shard indexes (suffix-ranged GETs, or the cached index when the listing's ETag is
        known): the metas listing, without keeping the metas."""
        for key, _metas in self.list_metas(where):
            yield key

    # -- writes --------------------------------------------------------------------------------
    def begin(self, keys: Sequence[SeriesKey]) -> Transaction:
        """An optimistic transaction: nothing is read or locked until it reads or commits."""
        return S3Transaction(self, keys)

    # -- replication state -------------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        got = self.client.get(self._state_key(name))
        return None if got is None else self._state_value(name, got[0])

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        super().close()
