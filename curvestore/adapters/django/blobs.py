"""Series blobs of the ``data`` column of ``Store`` and ``TimeseriesStore`` (one blob per series).

Two formats share the column and are told apart by their first bytes:

* **holcstore** (read only): a Feather file (Arrow IPC, LZ4-compressed) of the one-column frame
  ``ds.to_frame(name=...)``; pandas older than 2.2 stored the index as a column named
  ``index``. Reading it needs pyarrow (the ``parquet`` extra); without it,
  :class:`~curvestore.errors.BackendNotInstalledError` names the extra.
* **curvestore series blob** (written): ``MAGIC``, a little-endian ``uint32`` header length, a
  JSON header (codec id, dtype, length, series name, index description and payload sizes), the
  values encoded by a core codec, the index payload (only for explicit timestamps or a
  non-datetime index), then a CRC-32 of every preceding byte. A regular index (one with a
  ``freq``) is stored as start/freq/tz/unit only, so it costs nothing; any other index is kept
  exactly. Values, NaN payloads included, come back bit for bit.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
import zlib
from typing import Any

import numpy as np
import pandas as pd

from curvestore.core.grid import TIME_UNITS, resolve_time_unit
from curvestore.errors import BackendNotInstalledError, IntegrityError, InvalidDataError
from curvestore.registry import get_codec

__all__ = ["DEFAULT_CODEC", "MAGIC", "decode_series", "encode_series", "is_curvestore_blob",
           "is_feather", "read_feather_blob", "write_feather_blob"]

MAGIC = b"CVSB\x01"
DEFAULT_CODEC = "lz4"
_FEATHER_MAGICS = (b"ARROW1", b"FEA1")
_U32 = struct.Struct("<I")
#: dtypes the codecs lack, stored widened (losslessly) and narrowed back on read.
_WIDEN = {"bool": "uint32", "int8": "int32", "int16": "int32", "uint8": "uint32",
          "uint16": "uint32"}


def is_curvestore_blob(data: bytes) -> bool:
    """Whether ``data`` is a curvestore series blob."""
    return bytes(data[:len(MAGIC)]) == MAGIC


def is_feather(data: bytes) -> bool:
    """Whether ``data`` looks like a Feather (v1 or v2) file, as holcstore wrote them."""
    return bytes(data[:6]).startswith(_FEATHER_MAGICS)


def _feather() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.feather as feather
    except ImportError as exc:
        raise BackendNotInstalledError("reading holcstore's Feather series blobs", "parquet",
                                       str(exc)) from exc
    return pa, feather


def read_feather_blob(data: bytes) -> pd.Series:
    """The series of a holcstore blob (first column; an ``index`` column becomes the index)."""
    pa, feather = _feather()
    df = feather.read_table(pa.BufferReader(bytes(data))).to_pandas()
    if "index" in df.columns:
        df = df.set_index("index")
    return df.iloc[:, 0]


def write_feather_blob(ds: pd.Series, name: Any = "name", *, index_column: bool = False) -> bytes:
    """A blob in holcstore's format (Feather, LZ4), e.g. to hand-build legacy rows.

    ``index_column=True`` reproduces holcstore under pandas < 2.2 (index stored as ``index``).
    """
    _pa, feather = _feather()
    df = ds.to_frame(name=name)
    if index_column:
        df = df.reset_index(names=["index"])
    buf = io.BytesIO()
    feather.write_feather(df, buf, compression="lz4")
    return buf.getvalue()


def _tz_spec(tz: Any) -> Any:
    """JSON form of a tz: its IANA name, or ``{"offset": seconds}`` for a fixed offset."""
    if tz is None:
        return None
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if name and "FixedOffset" not in str(name):
        return str(name)
    offset = tz.utcoffset(dt.datetime(2000, 1, 1))
    if str(tz) == "UTC" or offset is None:
        return "UTC"
    return {"offset": int(offset.total_seconds())}


def _tz_of(spec: Any) -> Any:
    if isinstance(spec, dict):
        return dt.timezone(dt.timedelta(seconds=spec["offset"]))
    return spec


def _json_name(name: Any) -> Any:
    if name is None or isinstance(name, (str, int, float, bool)):
        return name.item() if isinstance(name, np.generic) else name
    return str(name)


def _index_parts(index: pd.Index, codec_id: str) -> tuple[dict[str, Any], bytes]:
    """Header entry and payload of an index."""
    name = _json_name(index.name)
    if isinstance(index, pd.RangeIndex):
        return {"kind": "range", "start": index.start, "stop": index.stop, "step": index.step,
                "name": name}, b""
    if isinstance(index, pd.DatetimeIndex):
        unit = index.unit
        tz = _tz_spec(index.tz)
        utc = index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index
        ticks = np.asarray(utc.asi8, dtype=np.int64)
        if index.freq is not None and len(index):
            spec = {"kind": "regular", "start": int(ticks[0]), "freq": index.freq.freqstr,
                    "unit": unit, "tz": tz, "name": name}
            if _datetime_index(spec, len(index), b"", codec_id).equals(index):
                return spec, b""
        spec = {"kind": "datetime", "unit": unit, "tz": tz, "name": name}
        return spec, get_codec(codec_id).encode(np.ascontiguousarray(ticks))
    arr = np.asarray(index)
    if arr.dtype.kind not in "iuf" or arr.dtype.name in _WIDEN:
        raise InvalidDataError(f"cannot store an index of dtype {index.dtype}: use a "
                               "DatetimeIndex or a numeric index")
    return ({"kind": "array", "dtype": arr.dtype.str, "name": name},
            get_codec(codec_id).encode(np.ascontiguousarray(arr)))


def _datetime_index(spec: dict[str, Any], n: int, payload: bytes,
                    codec_id: str) -> pd.DatetimeIndex:
    unit = spec["unit"]
    tz = _tz_of(spec["tz"])
    if spec["kind"] == "regular":
        start = pd.Timestamp(np.datetime64(spec["start"], unit))
        start = start.tz_localize("UTC").tz_convert(tz) if tz is not None else start
        idx = pd.date_range(start=start, periods=n, freq=spec["freq"], unit=unit)
    else:
        ticks = get_codec(codec_id).decode(payload, dtype=np.dtype(np.int64), length=n)
        idx = pd.DatetimeIndex(ticks.view(f"M8[{unit}]"))
        if tz is not None:
            idx = idx.tz_localize("UTC").tz_convert(tz)
    return idx.rename(spec["name"])


def _index_of(spec: dict[str, Any], n: int, payload: bytes, codec_id: str) -> pd.Index:
    kind = spec["kind"]
    if kind == "range":
        return pd.RangeIndex(spec["start"], spec["stop"], spec["step"], name=spec["name"])
    if kind in ("regular", "datetime"):
        return _datetime_index(spec, n, payload, codec_id)
    if kind == "array":
        arr = get_codec(codec_id).decode(payload, dtype=np.dtype(spec["dtype"]), length=n)
        return pd.Index(arr, name=spec["name"])
    raise IntegrityError(f"unknown index kind {kind!r} in a curvestore series blob")


def encode_series(ds: pd.Series, *, name: Any = None, codec_id: str = DEFAULT_CODEC) -> bytes:
    """The curvestore blob of ``ds`` (named ``name``; a numeric dtype, any index above)."""
    if not isinstance(ds, pd.Series):
        raise InvalidDataError(f"expected a pandas Series, got {type(ds).__name__}")
    values = ds.to_numpy()
    if values.dtype.kind not in "biuf":
        raise InvalidDataError(f"cannot store values of dtype {ds.dtype}: use a numeric dtype")
    stored = values.astype(_WIDEN.get(values.dtype.name, values.dtype), copy=False)
    payload = get_codec(codec_id).encode(np.ascontiguousarray(stored))
    index_spec, index_payload = _index_parts(ds.index, codec_id)
    header = json.dumps({"codec": codec_id, "dtype": values.dtype.str, "n": len(values),
                         "name": _json_name(name), "index": index_spec,
                         "sizes": [len(payload), len(index_payload)]},
                        separators=(",", ":")).encode()
    body = b"".join((MAGIC, _U32.pack(len(header)), header, payload, index_payload))
    return body + _U32.pack(zlib.crc32(body))


def _decode_framed(data: bytes) -> pd.Series:
    if len(data) < len(MAGIC) + 8 or _U32.unpack(data[-4:])[0] != zlib.crc32(data[:-4]):
        raise IntegrityError("curvestore series blob fails its checksum (truncated or altered)")
    start = len(MAGIC) + 4
    (hlen,) = _U32.unpack_from(data, len(MAGIC))
    head = json.loads(data[start:start + hlen])
    codec_id, n = head["codec"], head["n"]
    vsize, isize = head["sizes"]
    pos = start + hlen
    dtype = np.dtype(head["dtype"])
    stored = np.dtype(_WIDEN.get(dtype.name, dtype))
    values = get_codec(codec_id).decode(data[pos:pos + vsize], dtype=stored, length=n)
    index = _index_of(head["index"], n, data[pos + vsize:pos + vsize + isize], codec_id)
    return pd.Series(values.astype(dtype, copy=False), index=index, name=head["name"])


def decode_series(data: bytes | memoryview, time_unit: str | None = None) -> pd.Series:
    """The series of a blob in either format (see the module docs).

    A DatetimeIndex comes back in ``time_unit`` (None: the unit pandas gives new timestamps,
    ``us`` on pandas 3, ``ns`` on pandas 2) where that holds its instants exactly, else in
    the unit it was stored in: a blob written under pandas 2 reads as one written under
    pandas 3, and nothing is ever rounded.

    Raises
    ------
    curvestore.errors.IntegrityError
        If the blob is in neither format or fails its checksum.
    curvestore.errors.BackendNotInstalledError
        For a holcstore blob when pyarrow is not installed.
    """
    raw = bytes(data)
    if is_curvestore_blob(raw):
        series = _decode_framed(raw)
    elif is_feather(raw):
        series = read_feather_blob(raw)
    else:
        raise IntegrityError("the data column holds neither a curvestore series blob nor a "
                             "holcstore Feather file")
    return _in_unit(series, resolve_time_unit(time_unit))


def _in_unit(series: pd.Series, unit: str) -> pd.Series:
    index = series.index
    if not isinstance(index, pd.DatetimeIndex) or index.unit == unit:
        return series
    ratio = TIME_UNITS[unit] // TIME_UNITS[index.unit]
    if ratio > 1 and (index.asi8[~index.isna()] % ratio).any():
        return series  # instants finer than ``unit``: kept as stored, never rounded
    try:
        converted = index.as_unit(unit)
    except (ValueError, OverflowError):  # beyond the range of ``unit``
        return series
    return series.set_axis(converted)
