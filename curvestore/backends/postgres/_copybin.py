"""PostgreSQL's binary COPY format, built from columns with numpy.

A batch of chunk rows is sent as one COPY stream. Building it row by row (psycopg's
``write_row``) costs a Python call and a tuple per row and field; here every field of every row
is placed with a handful of numpy operations per column, and only the payloads, which are
already bytes, are laid between the row prefixes by one ``bytes.join``.

The format (PostgreSQL's "COPY ... (FORMAT BINARY)"): a 19-byte signature, then per row a
16-bit field count and, per field, a 32-bit length followed by the value in the type's binary
send format (big-endian integers, one byte for a boolean, UTF-8 for text, raw bytes for
bytea), then a 16-bit -1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SIGNATURE", "TRAILER", "Column", "TextPool", "boolean", "copy_stream", "int4",
           "int8", "spans", "texts"]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # then no flags and no header extension
TRAILER = b"\xff\xff"


@dataclass(frozen=True, slots=True)
class Column:
    """The values of one field for ``n`` rows: fixed-width (``width`` bytes each, ``data`` a
    ``(n, width)`` uint8 array) or of varying width (``width`` None, ``data`` the values laid
    end to end as uint8, ``lengths`` their sizes)."""

    width: int | None
    data: np.ndarray
    lengths: np.ndarray | None = None

    def sizes(self, n: int) -> np.ndarray:
        if self.lengths is None:
            return np.full(n, self.width, dtype=np.int64)
        return self.lengths


def _fixed(values: np.ndarray, dtype: str) -> Column:
    big = np.ascontiguousarray(values, dtype=dtype)
    return Column(big.dtype.itemsize, big.view(np.uint8).reshape(len(big), -1))


def int4(values: np.ndarray) -> Column:
    return _fixed(values, ">i4")


def int8(values: np.ndarray) -> Column:
    return _fixed(values, ">i8")


def boolean(values: np.ndarray) -> Column:
    return _fixed(np.asarray(values, dtype=bool), "u1")


class TextPool:
    """Text values encoded once each, to be picked per row by index (:meth:`column`)."""

    def __init__(self, values: Sequence[str]) -> None:
        encoded = [v.encode() for v in values]
        self.sizes = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        self.pool = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.starts = np.zeros(len(self.sizes), dtype=np.int64)
        np.cumsum(self.sizes[:-1], out=self.starts[1:])

    def column(self, rows: np.ndarray) -> Column:
        lengths = self.sizes[rows]
        return Column(None, self.pool[spans(self.starts[rows], lengths)], lengths)


def texts(values: Sequence[str], rows: np.ndarray) -> Column:
    """Text values given once each (``values``) and picked per row by index (``rows``)."""
    return TextPool(values).column(rows)


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indexes ``starts[i] .. starts[i] + lengths[i] - 1`` of every row, end to end."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    shift = np.repeat(starts - (ends - lengths), lengths)
    return shift + np.arange(total, dtype=np.int64)


def _prefixes(columns: Sequence[Column], n: int, tail: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's bytes before its tail value (field count, every field, the tail's length)
    laid end to end, and where each row's prefix starts (``n + 1`` offsets)."""
    fields = len(columns) + (tail is not None)
    sizes = [c.sizes(n) for c in columns]
    row_size = np.full(n, 2 + 4 * fields, dtype=np.int64)
    for size in sizes:
        row_size += size
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(row_size, out=starts[1:])
    out = np.empty(int(starts[-1]), dtype=np.uint8)
    at = starts[:-1].copy()
    _put(out, at, np.full(n, fields, dtype=">i2"))
    at += 2
    for column, size in zip(columns, sizes, strict=True):
        _put(out, at, size.astype(">i4"))
        at += 4
        if column.width is not None:
            out[at[:, None] + np.arange(column.width)] = column.data
        else:
            out[spans(at, size)] = column.data
        at += size
    if tail is not None:
        _put(out, at, tail.astype(">i4"))
    return out, starts


def _put(out: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    width = values.dtype.itemsize
    out[at[:, None] + np.arange(width)] = values.view(np.uint8).reshape(len(values), width)


def copy_stream(columns: Sequence[Column], n: int, tail: Sequence[bytes | memoryview] | None = None,
                *, first: bool = True, last: bool = True) -> bytes:
    """``n`` rows of ``columns`` (then of the values ``tail``, one per row, when given) in the
    binary COPY format; ``first``/``last`` say whether the signature and the trailer belong
    to this piece of the stream (a stream sent in several pieces has each once)."""
    sizes = None if tail is None else np.fromiter((len(t) for t in tail), dtype=np.int64,
                                                  count=n)
    prefixes, starts = _prefixes(columns, n, sizes)
    head = prefixes.data
    parts: list[bytes | memoryview] = [SIGNATURE] if first else []
    if tail is None:
        parts.append(head)
    else:
        bounds = starts.tolist()
        for i, value in enumerate(tail):
            parts.append(head[bounds[i]:bounds[i + 1]])
            parts.append(value)
    if last:
        parts.append(TRAILER)
    return b"".join(parts)
