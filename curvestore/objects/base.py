"""The object interface the log-structured engine is written against, and its contract.

An :class:`ObjectStore` maps keys (``/``-separated text, see :func:`validate_key`) to immutable
byte strings. It is the whole of what the engine needs from a medium, after Icechunk's and
Delta Lake's storage requirements: whole, ranged and suffix reads, atomic replace, create-if-
absent, compare-and-replace, delete and a sorted listing. Every adapter (memory, local files,
S3) passes :class:`curvestore.testing.objects.ObjectStoreConformance`.

Contract, for every adapter:

* **Atomic objects.** :meth:`~ObjectStore.put` and its conditional forms replace an object
  whole: a reader (any thread, any process) sees the old bytes or the new ones, never a mix,
  a prefix or an empty placeholder. :meth:`~ObjectStore.get` returns the bytes of one version
  together with that version's token. One ranged read returns bytes of one version; two reads
  may see two versions unless the object is never replaced (the engine's segments are not).
* **Conditional writes are the commit point.** :meth:`~ObjectStore.put_if_absent` creates the
  object only if no object has the key, and :meth:`~ObjectStore.put_if_match` replaces it
  only if its current version is the one given; both are single atomic steps against every
  other writer of every process (and, on S3, of every machine), and the loser gets
  :class:`~curvestore.errors.ConflictError` with nothing written. ``delete(key, if_match=v)``
  is the same compare-and-delete.
* **Read after write.** Once a write returns, every later read and listing, in any process,
  sees it or a later write of the key. A listing reflects every object written before it
  started; objects written or deleted while it runs may or may not appear, each listed item
  being the state of its object at some moment of the call. Listings never repeat a key and
  are in ascending order of the keys' code points (the order of their UTF-8 bytes, S3's).
* **Versions.** A version is an opaque, non-empty ``str``. Versions are compared for equality
  only, and only between versions of one key. The guarantee every adapter gives: if a key's
  version equals one seen earlier, its bytes are the bytes seen then, so a compare-and-replace
  never overwrites bytes its caller has not read (no lost update, no ABA on content). Adapters
  with ``unique_versions`` give more: every successful write gets a version the key never had
  before, even when it stores the same bytes again (memory, files); on S3 the version is the
  ETag, the MD5 of the bytes of a single PUT, so putting the same bytes again may keep it.
* **Durability** when a write returns is the adapter's: files with ``fsync=True`` (the default)
  on stable storage, S3 as durable as the service, memory for the process's lifetime.
* **Errors.** Bad keys, ranges and data raise :class:`~curvestore.errors.InvalidKeyError` or
  :class:`~curvestore.errors.InvalidDataError` before any I/O; a missing object is ``None``
  from reads (never an exception); a failing medium raises the adapter's errors (S3:
  ``S3Error`` or ConfigurationError chained to botocore's; files: the ``OSError``, such as
  a full disk). No message or repr carries credentials.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from curvestore.errors import ConflictError, InvalidDataError, InvalidKeyError
from curvestore.objects._keys import (
    MAX_KEY_BYTES,
    RESERVED_PREFIX,
    shown,
    validate_key,
    validate_prefix,
)

__all__ = ["MAX_KEY_BYTES", "RESERVED_PREFIX", "ObjectInfo", "ObjectStore", "validate_key",
           "validate_prefix"]

Data = bytes | bytearray | memoryview


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidDataError(f"{name} must be an int >= 0, got {value!r}")
    return value


def _check_optional_count(name: str, value: object) -> int | None:
    return None if value is None else _check_count(name, value)


def _check_data(data: object) -> Data:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidDataError(f"object data must be bytes, bytearray or memoryview, got "
                               f"{type(data).__name__}")
    return data


def _check_version(version: object) -> str:
    if not isinstance(version, str) or not version:
        raise InvalidDataError(f"a version must be a non-empty str (as returned by get, put or "
                               f"list), got {version!r}")
    return version


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object of a listing: its key (relative to the store), size in bytes and version."""

    key: str
    size: int
    version: str


class ObjectStore(abc.ABC):
    """Keys to immutable byte strings; see the module docstring for the contract.

    Public methods validate their arguments and call the private hooks adapters implement,
    which receive valid keys, ``bytes`` data and non-negative ints only.
    """

    #: Every successful write gets a version the key never had (see the module docstring).
    unique_versions: ClassVar[bool] = True

    # -- reads -----------------------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, str] | None:
        """Read a whole object.

        Parameters
        ----------
        key : str
            The object's key.

        Returns
        -------
        tuple of (bytes, str) or None
            The object's bytes and the version they belong to, or None when there is no
            object with this key.

        Raises
        ------
        InvalidKeyError
            When ``key`` is not a valid key.
        """
        return self._get(validate_key(key))

    def get_range(self, key: str, start: int, length: int | None = None) -> bytes | None:
        """Read ``length`` bytes from offset ``start`` (to the end when ``length`` is None).

        A range reaching past the end is cut at the end; one starting at or past the end is
        empty. The bytes come from one version of the object.

        Parameters
        ----------
        key : str
            The object's key.
        start : int
            First byte, >= 0.
        length : int or None
            Bytes wanted, >= 0; None for everything from ``start``.

        Returns
        -------
        bytes or None
            At most ``length`` bytes, or None when there is no object with this key.

        Raises
        ------
        InvalidKeyError
            When ``key`` is not a valid key.
        InvalidDataError
            When ``start`` or ``length`` is not an int >= 0.
        """
        valid = validate_key(key)
        first = _check_count("start", start)
        return self._get_range(valid, first, _check_optional_count("length", length))

    def get_suffix(self, key: str, length: int) -> bytes | None:
        """Read the last ``length`` bytes (the whole object when it is shorter), for example
        an index or trailer at the end of a segment, in one request.

        Parameters
        ----------
        key : str
            The object's key.
        length : int
            Bytes wanted, >= 0.

        Returns
        -------
        bytes or None
            The object's last ``min(length, size)`` bytes, or None when there is no object.

        Raises
        ------
        InvalidKeyError
            When ``key`` is not a valid key.
        InvalidDataError
            When ``length`` is not an int >= 0.
        """
        valid = validate_key(key)
        return self._get_suffix(valid, _check_count("length", length))

    def get_many(self, keys: Sequence[str]) -> list[tuple[bytes, str] | None]:
        """Read many whole objects (concurrently where the medium gains from it).

        Parameters
        ----------
        keys : sequence of str
            The objects' keys (repeats allowed).

        Returns
        -------
        list
            For each key, in order, what :meth:`get` returns.

        Raises
        ------
        InvalidKeyError
            When any key is invalid (checked before any read).
        """
        return self._get_many([validate_key(k) for k in keys])

    def get_ranges(self, requests: Sequence[tuple[str, int, int | None]], *,
                   views: bool = False) -> list[Any]:
        """Many :meth:`get_range` reads at once (concurrently where the medium gains from it).

        Parameters
        ----------
        requests : sequence of (key, start, length)
            As for :meth:`get_range`.
        views : bool
            Allow read-only buffers (``memoryview``) in place of ``bytes``: local files map
            large ranges instead of copying them. For bulk readers that scan the bytes; such
            a buffer holds the bytes read even after the object is replaced or deleted.

        Returns
        -------
        list
            For each request, in order, what :meth:`get_range` returns (or, with ``views``,
            a buffer of the same bytes).

        Raises
        ------
        InvalidKeyError, InvalidDataError
            When any request is invalid (checked before any read).
        """
        checked: list[tuple[str, int, int | None]] = []
        for request in requests:
            key, start, length = request
            first = _check_count("start", start)
            checked.append((validate_key(key), first, _check_optional_count("length", length)))
        return self._view_ranges(checked) if views else self._get_ranges(checked)

    def list(self, prefix: str = "", *, start_after: str | None = None
             ) -> Iterator[ObjectInfo]:
        """The objects whose keys start with ``prefix``, in ascending key order.

        Parameters
        ----------
        prefix : str
            A plain string prefix (``"log/0"`` matches ``log/00000000000000000001``).
        start_after : str or None
            Only keys greater than this one (it need not exist), for resuming a listing or
            reading a numbered log from a position.

        Returns
        -------
        iterator of ObjectInfo
            Lazily, page by page where the medium pages.

        Raises
        ------
        InvalidKeyError
            When ``prefix`` cannot start a valid key or ``start_after`` is not a str.
        """
        valid = validate_prefix(prefix)
        if start_after is not None and not isinstance(start_after, str):
            raise InvalidKeyError(f"start_after must be a str, got {type(start_after).__name__}",
                                  start_after)
        return self._list(valid, start_after or None)

    # -- writes ----------------------------------------------------------------------------
    def put(self, key: str, data: Data) -> str:
        """Create or replace an object, atomically.

        Parameters
        ----------
        key : str
            The object's key.
        data : bytes, bytearray or memoryview
            Its new bytes (copied before the call returns).

        Returns
        -------
        str
            The new version.

        Raises
        ------
        InvalidKeyError, InvalidDataError
            On a bad key or data that is not bytes-like.
        """
        return self._put(validate_key(key), bytes(_check_data(data)))

    def put_parts(self, key: str, parts: Iterable[Data]) -> str:
        """:meth:`put` of the bytes of ``parts`` laid end to end, taken as they come: an
        adapter that can (local files) writes each part as it arrives, so a writer producing
        a large object piece by piece overlaps producing and writing, and never holds it
        whole. Atomic like :meth:`put`: until it returns, readers see the old object."""
        return self._put_parts(validate_key(key), (_check_data(part) for part in parts))

    def put_if_absent(self, key: str, data: Data) -> str:
        """Create an object only if no object has this key: an atomic create, the commit
        point of a numbered log (exactly one of any number of racing writers succeeds).

        Parameters
        ----------
        key : str
            The object's key.
        data : bytes, bytearray or memoryview
            Its bytes.

        Returns
        -------
        str
            The new version.

        Raises
        ------
        ConflictError
            When an object with this key exists (nothing is written).
        InvalidKeyError, InvalidDataError
            On a bad key or data that is not bytes-like.
        """
        return self._put_if_absent(validate_key(key), bytes(_check_data(data)))

    def put_if_match(self, key: str, data: Data, version: str) -> str:
        """Replace an object only if its current version is ``version`` (compare-and-swap).

        Parameters
        ----------
        key : str
            The object's key.
        data : bytes, bytearray or memoryview
            Its new bytes.
        version : str
            The version the caller read (from :meth:`get`, :meth:`put` or :meth:`list`).

        Returns
        -------
        str
            The new version.

        Raises
        ------
        ConflictError
            When the object's version is another one or the object is gone (nothing is
            written).
        InvalidKeyError, InvalidDataError
            On a bad key, data that is not bytes-like or a version that is not a str.
        """
        return self._put_if_match(validate_key(key), bytes(_check_data(data)),
                                  _check_version(version))

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete an object. Without ``if_match`` deleting a missing object is not an error.

        Parameters
        ----------
        key : str
            The object's key.
        if_match : str or None
            Delete only if the object's current version is this one.

        Raises
        ------
        ConflictError
            With ``if_match``, when the object has another version or does not exist.
        InvalidKeyError
            On a bad key.
        """
        valid = validate_key(key)
        self._delete(valid, None if if_match is None else _check_version(if_match))

    def close(self) -> None:  # noqa: B027 (optional hook: most adapters hold nothing)
        """Release pools and file descriptors; the store must not be used afterwards."""

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hooks -----------------------------------------------------------------------------
    @abc.abstractmethod
    def _get(self, key: str) -> tuple[bytes, str] | None:
        """See :meth:`get`."""

    @abc.abstractmethod
    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        """See :meth:`get_range`."""

    @abc.abstractmethod
    def _get_suffix(self, key: str, length: int) -> bytes | None:
        """See :meth:`get_suffix`."""

    def _get_many(self, keys: builtins.list[str]) -> builtins.list[tuple[bytes, str] | None]:
        # note for implementers: one read after another; override where requests have latency
        return [self._get(k) for k in keys]

    def _get_ranges(self, requests: builtins.list[tuple[str, int, int | None]]
                    ) -> builtins.list[bytes | None]:
        # note for implementers: one read after another; override where requests have latency
        return [self._get_range(*request) for request in requests]

    def _view_ranges(self, requests: builtins.list[tuple[str, int, int | None]]
                     ) -> builtins.list[Any]:
        """See :meth:`get_ranges` with ``views``; this default reads bytes."""
        return self._get_ranges(requests)

    @abc.abstractmethod
    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        """See :meth:`list`."""

    def _put_parts(self, key: str, parts: Iterator[Data]) -> str:
        """See :meth:`put_parts`; this default joins the parts and puts them."""
        return self._put(key, b"".join(parts))

    @abc.abstractmethod
    def _put(self, key: str, data: bytes) -> str:
        """See :meth:`put`."""

    @abc.abstractmethod
    def _put_if_absent(self, key: str, data: bytes) -> str:
        """See :meth:`put_if_absent`."""

    @abc.abstractmethod
    def _put_if_match(self, key: str, data: bytes, version: str) -> str:
        """See :meth:`put_if_match`."""

    @abc.abstractmethod
    def _delete(self, key: str, if_match: str | None) -> None:
        """See :meth:`delete`."""

    @staticmethod
    def _conflict(key: str, what: str) -> ConflictError:
        return ConflictError(f"object {shown(key)}: {what}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Stores shared between processes pickle as the arguments that reopen them (no
        credentials: those come from the environment)."""
        raise TypeError(f"{type(self).__name__} cannot be sent to another process")
