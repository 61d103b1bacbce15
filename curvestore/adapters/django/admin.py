"""Django admin actions: download the selected series as a ZIP of CSV files.

The ZIP holds ``export_serie_<i>.csv`` per series (index and a ``data`` column, ``;``
separated, as holcstore writes them) and ``content_summary.csv``: one line per file with its
name and the series' attributes. Attach the ready-made actions to your ``ModelAdmin``::

    from curvestore.adapters.django.admin import download_timeseries_from_chunkstore

    @admin.register(MyChunkStore)
    class MyChunkStoreAdmin(admin.ModelAdmin):
        actions = [download_timeseries_from_chunkstore]

or build one for any model with :func:`make_download_action` and a function turning the
selected queryset into ``(attributes, series)`` pairs. This module registers no model and
does not need ``django.contrib.admin`` to be importable.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd
from django.contrib import messages
from django.http import HttpResponse

__all__ = ["chunkstore_series", "download_timeseries_from_chunkstore",
           "download_timeseries_from_legacy_store", "download_timeseries_from_store",
           "legacy_store_series", "make_download_action", "timeseries_store_series", "zip_series"]

#: A selected row set -> ``(attributes or name, series)`` pairs.
SeriesOf = Callable[[Any], Iterable[tuple[Mapping[str, Any] | str, pd.Series]]]
_CSV = {"sep": ";", "decimal": ".", "float_format": "%.8f"}


def _csv(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_csv(buffer, **_CSV)
    return buffer.getvalue()


def zip_series(pairs: Iterable[tuple[Mapping[str, Any] | str, pd.Series]]) -> tuple[bytes, int]:
    """The ZIP bytes of ``pairs`` and the number of series in it."""
    summary: list[dict[str, Any]] = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (info, series) in enumerate(pairs):
            filename = f"export_serie_{i}.csv"
            archive.writestr(filename, _csv(series.to_frame(name="data")))
            attrs = {"name": info} if isinstance(info, str) else dict(info)
            summary.append({"filename": filename, **attrs})
        archive.writestr("content_summary.csv", _csv(pd.DataFrame(summary)))
    return buffer.getvalue(), len(summary)


def make_download_action(series_of: SeriesOf, description: str = "Download selected timeseries"
                         ) -> Callable[[Any, Any, Any], HttpResponse | None]:
    """An admin action zipping ``series_of(queryset)``; a warning when nothing is selected."""

    def action(modeladmin: Any, request: Any, queryset: Any) -> HttpResponse | None:
        if not queryset.exists():
            modeladmin.message_user(request, "Please select at least one object",
                                    messages.WARNING)
            return None
        body, count = zip_series(series_of(queryset.all()))
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        name = f"export_{count}_{queryset.model.__name__}_{stamp}.zip"
        response = HttpResponse(body, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    action.short_description = description  # type: ignore[attr-defined]
    action.__name__ = f"download_{getattr(series_of, '__name__', 'series')}"
    return action


def chunkstore_series(queryset: Any) -> Iterable[tuple[dict[str, Any], pd.Series]]:
    """Each selected chunk row as its own series (empty for a tombstone), with the row's
    key fields, ``chunk_index``, ``start_ts``, ``dtype``, ``updated_at`` and ``is_deleted``."""
    from curvestore.core import chunks as _chunks

    model = queryset.model
    store = model._cs_store(queryset.db)
    names = model._key_order()
    for row in queryset.order_by(*names, "chunk_index").iterator():
        key = tuple(getattr(row, n) for n in names)
        info = {**dict(zip(names, key, strict=True)), "chunk_index": row.chunk_index,
                "start_ts": row.start_ts, "dtype": row.dtype, "updated_at": row.updated_at,
                "is_deleted": row.is_deleted}
        record = None if row.is_deleted else store.backend._record(
            key, row.chunk_index, row.start_ts, row.dtype, row.data, row.updated_at,
            row.row_version)
        series = None if record is None else _chunks.assemble(
            store.grid, [_chunks.decode(record, store.codecs)], None, None, True, store.index)
        if series is None:
            series = pd.Series([], dtype="float64", index=store.index(0, 0))
        yield info, series


def timeseries_store_series(queryset: Any) -> Iterable[tuple[dict[str, Any], pd.Series]]:
    """Rows of a ``TimeseriesStore`` (one series each, through ``decoded_ts_data``)."""
    for obj in queryset:
        content = dict(obj.decoded_ts_data)
        series = content.pop("data")
        content.pop("id", None)
        yield {k: v for k, v in content.items() if not k.startswith("_")}, series


def legacy_store_series(queryset: Any) -> Iterable[tuple[dict[str, Any], pd.Series]]:
    """Rows of a ``Store`` (versioned load curves): one series per selected row."""
    for entry in queryset.model._read(queryset):
        content = dict(entry)
        series = content.pop("data")
        yield {k: v for k, v in content.items() if not k.startswith("_")}, series


download_timeseries_from_chunkstore = make_download_action(
    chunkstore_series, "Download selected timeseries chunks")
download_timeseries_from_store = make_download_action(timeseries_store_series)
download_timeseries_from_legacy_store = make_download_action(legacy_store_series)
