"""Object keys: the rules every adapter applies (so a key valid on one medium is valid on all)."""

from __future__ import annotations

from curvestore.errors import InvalidKeyError

__all__ = ["MAX_KEY_BYTES", "MAX_SEGMENT_BYTES", "RESERVED_PREFIX", "shown", "validate_key",
           "validate_prefix"]

#: S3's limit on the length of a key (UTF-8 bytes), enforced everywhere so keys are portable.
MAX_KEY_BYTES = 1024
#: The common limit on one file name (``NAME_MAX``), enforced on every segment everywhere.
MAX_SEGMENT_BYTES = 255
#: First segment of keys no adapter accepts: the files adapter keeps its own state there.
RESERVED_PREFIX = ".curvestore"

_FORBIDDEN = frozenset(chr(c) for c in (*range(0x20), 0x7F)) | {"\\"}


def shown(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 120 else text[:117] + "..."


def _check_text(what: str, key: object) -> str:
    if not isinstance(key, str):
        raise InvalidKeyError(f"an object {what} must be a str, got {type(key).__name__}", key)
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError(f"object {what} {shown(key)} is not valid UTF-8 (it holds a "
                              "lone surrogate)", key) from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"object {what} {shown(key)} is {len(encoded)} bytes long in "
                              f"UTF-8; the limit is {MAX_KEY_BYTES}", key)
    bad = _FORBIDDEN.intersection(key)
    if bad:
        raise InvalidKeyError(f"object {what} {shown(key)} holds a forbidden character "
                              f"{sorted(bad)[0]!r} (NUL, control characters and backslashes "
                              "are refused)", key)
    return key


def _check_segment(what: str, key: str, segment: str) -> None:
    if segment in ("", ".", ".."):
        name = "an empty segment" if not segment else f"a {segment!r} segment"
        raise InvalidKeyError(f"object {what} {shown(key)} has {name}; keys are "
                              "'/'-separated names like 'log/00000000000000000001.json'", key)
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise InvalidKeyError(f"object {what} {shown(key)} has a segment longer than "
                              f"{MAX_SEGMENT_BYTES} UTF-8 bytes", key)


def validate_key(key: object) -> str:
    """Check an object key and return it.

    A key is a non-empty ``str`` of at most 1024 UTF-8 bytes, made of ``/``-separated
    segments that are neither empty (no leading, trailing or doubled ``/``) nor ``.`` or
    ``..``, each at most 255 bytes, without NUL, control characters or backslashes, and not
    starting with the reserved segment ``.curvestore``. The rules are the same for every
    adapter, so a key valid on one medium is valid on all of them.

    Parameters
    ----------
    key : object
        The candidate key.

    Returns
    -------
    str
        ``key`` itself.

    Raises
    ------
    InvalidKeyError
        When ``key`` breaks a rule; the message says which, ``.key`` holds it.
    """
    text = _check_text("key", key)
    segments = text.split("/")
    for segment in segments:
        _check_segment("key", text, segment)
    if segments[0] == RESERVED_PREFIX:
        raise InvalidKeyError(f"object keys under {RESERVED_PREFIX!r}/ are reserved", key)
    return text


def validate_prefix(prefix: object) -> str:
    """Check a listing prefix (``""``, or the start of a valid key) and return it.

    Every segment but the last follows :func:`validate_key`'s rules; the last may be empty
    (a prefix ending with ``/``) or any start of a segment.

    Parameters
    ----------
    prefix : object
        The candidate prefix.

    Returns
    -------
    str
        ``prefix`` itself.

    Raises
    ------
    InvalidKeyError
        When no valid key can start with ``prefix``.
    """
    if prefix == "":
        return ""
    text = _check_text("prefix", prefix)
    segments = text.split("/")
    for segment in segments[:-1]:
        _check_segment("prefix", text, segment)
    if len(segments[-1].encode("utf-8")) > MAX_SEGMENT_BYTES:
        _check_segment("prefix", text, segments[-1])
    if len(segments) > 1 and segments[0] == RESERVED_PREFIX:
        raise InvalidKeyError(f"object keys under {RESERVED_PREFIX!r}/ are reserved", prefix)
    return text
