"""``TimeseriesChunkStoreSyncClient``: pull a remote chunk store's changes into a local model.

Same constructor and ``pull`` as holcstore 0.6.7. Every HTTP call goes through this module's
``requests.get`` (tests may patch ``curvestore.adapters.django.sync_client.requests.get``);
bodies travel as JSON on GET, as holcstore's ``pack/`` does.

When the server offers curvestore's cursor protocol (its ``manifest/`` endpoint answers), the
pull is :func:`curvestore.core.sync.replicate` over :class:`DRFSource`: the cursor is saved in
the same commit as each imported page, so a crashed pull resumes where it stopped, and a chunk
that commits late or shares a timestamp with another is never missed. Against a holcstore
server (``manifest/`` answers 404) it falls back to holcstore's ``updates/`` + ``pack/``
protocol (``since`` = the newest local ``updated_at``), with holcstore's limits.

Retries: a 429 waits for ``Retry-After`` (seconds or an HTTP date); connection errors,
timeouts and 5xx answers back off exponentially; at most ``retry_max_tries`` attempts and
``retry_max_time`` seconds per request (holcstore's ``backoff`` semantics). Other 4xx raise
:class:`~curvestore.adapters.http.client.RemoteError` at once.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import pandas as pd
import requests

from curvestore.adapters.http.client import RemoteError, retry_after
from curvestore.adapters.http.wire import FrameReader, changes_query, protocol_version
from curvestore.core.records import Change, ChangePage, ChunkRecord, SeriesKey
from curvestore.core.sync import replicate

__all__ = ["DRFSource", "TimeseriesChunkStoreSyncClient"]

logger = logging.getLogger(__name__)

_RETRYABLE = (requests.ConnectionError, requests.Timeout)


def _sleep(seconds: float) -> None:
    """Wait between retries (tests replace it)."""
    time.sleep(seconds)


class _Transport:
    """GET requests with holcstore's retry budget and ``Retry-After`` handling."""

    def __init__(self, tries: int, max_time: float, extra: Mapping[str, Any]) -> None:
        self.tries = max(1, int(tries))
        self.max_time = float(max_time)
        self.extra = dict(extra)

    @overload
    def get(self, url: str, *, ok404: Literal[False] = False, **kwargs: Any
            ) -> requests.Response: ...

    @overload
    def get(self, url: str, *, ok404: Literal[True], **kwargs: Any
            ) -> requests.Response | None: ...

    def get(self, url: str, *, ok404: bool = False, **kwargs: Any) -> requests.Response | None:
        """A 2xx response (None for a 404 when ``ok404``), or RemoteError."""
        began = time.monotonic()
        for attempt in range(self.tries):
            last = attempt + 1 >= self.tries
            try:
                response = requests.get(url, **kwargs, **self.extra)
            except _RETRYABLE as exc:
                if last:
                    raise RemoteError(f"GET {url}: {type(exc).__name__} after {attempt + 1} "
                                      "attempts") from exc
                self._sleep(min(30.0, 0.5 * 2 ** attempt) * random.uniform(0.5, 1), began)
                continue
            status = response.status_code
            if status < 400:
                return response
            if status == 404 and ok404:
                return None
            if (status == 429 or status >= 500) and not last:
                wait = retry_after(response.headers.get("Retry-After")) if status == 429 else None
                if wait is None:
                    wait = min(30.0, 0.5 * 2 ** attempt) * random.uniform(0.5, 1)
                else:
                    logger.info("Rate limit reached. Waiting %ss (Retry-After)", wait)
                self._sleep(wait, began)
                continue
            raise RemoteError(f"GET {url}: HTTP {status}: {response.text[:300]}", status)
        raise AssertionError("unreachable")

    def _sleep(self, seconds: float, began: float) -> None:
        if time.monotonic() - began + seconds > self.max_time:
            raise RemoteError(f"retry budget of {self.max_time}s exhausted")
        _sleep(seconds)

    def json(self, url: str, **kwargs: Any) -> Any:
        response = self.get(url, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteError(f"GET {url}: the answer is not JSON") from exc


class DRFSource:
    """The cursor endpoints of a :class:`TimeseriesChunkStoreSyncViewSet` as a
    :class:`~curvestore.core.sync.ChangeSource` (``fetch`` asks ``batch`` refs per request)."""

    def __init__(self, endpoint: str, transport: _Transport, manifest: dict[str, Any],
                 batch: int = 50) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.transport = transport
        self._manifest = manifest
        self.batch = max(1, int(batch))

    def manifest(self) -> dict[str, Any]:
        return self._manifest

    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        names = [k["name"] for k in self._manifest["keys"]]
        params = changes_query(cursor, where, limit, protocol_version(self._manifest))
        data = self.transport.json(f"{self.endpoint}/changes/", params=params)
        try:
            items = [Change(tuple(i["key"][n] for n in names), int(i["chunk"]),
                            int(i["version"]), bool(i["deleted"])) for i in data["items"]]
            return ChangePage(items, str(data["cursor"]), bool(data["has_more"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteError(f"{self.endpoint}/changes/: malformed answer ({exc!r})") from exc

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        wanted = list(dict.fromkeys((tuple(k), int(c)) for k, c in refs))
        got: dict[tuple[SeriesKey, int], ChunkRecord] = {}
        while len(got) < len(wanted):
            batch = [r for r in wanted if r not in got][:self.batch]
            before = len(got)
            self._fetch_once(batch, got)
            if len(got) == before:
                raise RemoteError(f"{self.endpoint}/chunks/: none of {len(batch)} chunks sent")
        return [got[r] for r in wanted]

    def _fetch_once(self, batch: list[tuple[SeriesKey, int]],
                    got: dict[tuple[SeriesKey, int], ChunkRecord]) -> None:
        asked = set(batch)
        body = {"refs": [[list(key), chunk] for key, chunk in batch]}
        response = self.transport.get(f"{self.endpoint}/chunks/", json=body)
        reader = FrameReader(f"chunk stream from {self.endpoint}")
        for record in reader.feed(response.content):
            ref = (record.key, record.chunk)
            if ref not in asked:
                raise RemoteError(f"the server sent chunk {record.chunk} of {record.key}, "
                                  "which was not asked for")
            got[ref] = record
        reader.close()


class TimeseriesChunkStoreSyncClient:
    """Pulls a remote store into ``store_model`` (holcstore's client, same signature)."""

    def __init__(self, *, endpoint: str, store_model: Any, retry_max_tries: int = 5,
                 retry_max_time: int = 300, requests_get_kwargs: dict | None = None) -> None:
        """``endpoint``: the ViewSet's URL (``updates/``, ``pack/``... live under it);
        ``requests_get_kwargs``: passed to every ``requests.get`` (auth, timeout, headers)."""
        if not store_model.ALLOW_CLIENT_SERVER_SYNC:
            raise ValueError(f"Trying to use TimeseriesChunkStoreSyncClient with model "
                             f"{store_model.__name__} while ALLOW_CLIENT_SERVER_SYNC=False.")
        self.endpoint = endpoint.rstrip("/")
        self.store_model = store_model
        self._retry_tries = retry_max_tries
        self._retry_time = retry_max_time
        self.requests_get_kwargs = requests_get_kwargs if requests_get_kwargs is not None else {}
        self._protocol: str | None = None  # "cursor" or "holcstore", found on first pull
        self._manifest: dict[str, Any] | None = None

    @property
    def _transport(self) -> _Transport:
        return _Transport(self._retry_tries, self._retry_time, self.requests_get_kwargs)

    def protocol(self) -> str:
        """``"cursor"`` if the server serves ``manifest/`` (curvestore), else ``"holcstore"``."""
        if self._protocol is None:
            response = self._transport.get(f"{self.endpoint}/manifest/", ok404=True)
            data = None if response is None else response.json()
            if isinstance(data, dict) and data.get("format") == "curvestore":
                self._manifest, self._protocol = data, "cursor"
            else:
                self._protocol = "holcstore"
        return self._protocol

    def _cursor_manifest(self) -> dict[str, Any] | None:
        """The server's manifest when it speaks the cursor protocol, else None."""
        return self._manifest if self.protocol() == "cursor" else None

    def pull(self, filters: dict | None = None, batch: int = 50, page_size: int = 200
             ) -> tuple[int, int]:
        """Import what changed on the server; returns ``(fetched, deleted)`` chunk counts.

        ``filters``: key field values (exact match) limiting the series pulled; ``batch``:
        chunks per download request; ``page_size``: changes per page (and per local commit).
        """
        filters = dict(filters or {})
        manifest = self._cursor_manifest()
        if manifest is not None:
            source = DRFSource(self.endpoint, self._transport, manifest, batch)
            report = replicate(source, self.store_model._cs_store(), filter=filters,
                               batch=page_size)
            return report.chunks, report.tombstones
        return self._pull_holcstore(filters, batch, page_size)

    def _pull_holcstore(self, filters: dict, batch: int, page_size: int) -> tuple[int, int]:
        """holcstore's algorithm over ``updates/`` and ``pack/``."""
        model, transport = self.store_model, self._transport
        since = model.last_updated_at(filters)
        url: str | None = f"{self.endpoint}/updates/"
        params: dict | None = {"since": since.isoformat(), "limit": page_size, **filters}
        fetched = deleted = 0
        while url:
            page = transport.json(url, params=params)
            params = None  # the next links carry the parameters
            updates = page.get("results", [])
            if not updates:
                break
            to_fetch = [u for u in updates if not u["is_deleted"]]
            for item in (u for u in updates if u["is_deleted"]):
                qs = model.objects.filter(**item["attrs"], chunk_index=item["chunk_index"])
                qs.delete(keep_tracking=True)
                qs.update(updated_at=_aware(item["updated_at"]))
            for i in range(0, len(to_fetch), batch):
                spec = [{"attrs": u["attrs"], "chunk_index": u["chunk_index"]}
                        for u in to_fetch[i:i + batch]]
                pack = transport.json(f"{self.endpoint}/pack/", json=spec)
                model.import_chunks([(base64.b64decode(p["blob"]), p["attrs"], p["meta"])
                                     for p in pack])
            fetched += len(to_fetch)
            deleted += len(updates) - len(to_fetch)
            url = page.get("next")
        return fetched, deleted


def _aware(value: Any) -> Any:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.to_pydatetime()
