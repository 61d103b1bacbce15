"""The filesystem store's ``manifest.json``: its configuration, sealed with a CRC-32.

The checksum covers every other field (canonical JSON), so a flipped bit or a hand edit of
freq, tz, chunking or keys is refused at open instead of reading every chunk on another grid.
Manifests written before the checksum existed have none: they are accepted and sealed by the
next read-write open.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from curvestore.errors import IntegrityError

__all__ = ["manifest_bytes", "parse_manifest"]


def manifest_checksum(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return f"{zlib.crc32(json.dumps(body, sort_keys=True, separators=(',', ':')).encode()):08x}"


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    sealed = {**manifest, "checksum": manifest_checksum(manifest)}
    return (json.dumps(sealed, indent=2, sort_keys=True) + "\n").encode()


def parse_manifest(raw: bytes, where: str) -> tuple[dict[str, Any], bool]:
    """(manifest without its checksum, whether it had one); IntegrityError if damaged."""
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise IntegrityError(f"{where}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{where}: the manifest is not a JSON object")
    stored = manifest.pop("checksum", None)
    if stored is not None and stored != manifest_checksum(manifest):
        raise IntegrityError(f"{where}: the manifest fails its checksum (damaged or edited by "
                             "hand; freq, tz, chunking and keys cannot change under a store)")
    return manifest, stored is not None


