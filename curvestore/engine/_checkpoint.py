"""Catalog checkpoints: the folded catalog after an entry, so opening reads one object and the
entries after it instead of the whole log.

A checkpoint is a container (:mod:`curvestore.engine._format`) whose header holds the series
names (one list per key attribute), the saved states and the tables its rows index. It is
written with ``put_if_absent`` under ``catalog/<seq>``: two writers of the same checkpoint
write the same content, so losing that race is harmless. Checkpoints are an optimisation
only: the log is complete, so a damaged checkpoint is skipped (an older one, or the log from
its start, gives the same catalog).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from curvestore.engine._catalog import Catalog, Names, chunk_keys
from curvestore.engine._format import (
    Container,
    catalog_key,
    decode_container,
    encode_container,
    log_key,
    seq_of,
)
from curvestore.errors import ConflictError, IntegrityError

if TYPE_CHECKING:
    from curvestore.objects.base import ObjectStore

__all__ = ["load_catalog", "write_checkpoint"]

_log = logging.getLogger(__name__)
#: Entries read per request when catching up from a checkpoint.
_PAGE = 256


def write_checkpoint(objects: ObjectStore, catalog: Catalog) -> Catalog:
    """Write ``catalog`` as a checkpoint; return it with its count of pending entries reset."""
    compact = catalog.without_unused_objects()
    header = {"kind": "checkpoint", "seq": compact.seq, "objects": list(compact.objects),
              "codecs": list(compact.codecs), "dtypes": list(compact.dtypes),
              "states": dict(compact.states), "names": compact.names.to_json()}
    with contextlib.suppress(ConflictError):  # another handle wrote the same checkpoint
        objects.put_if_absent(catalog_key(catalog.seq), encode_container(header, compact.rows))
    return Catalog(seq=compact.seq, names=compact.names, rows=compact.rows, keys=compact.keys,
                   objects=compact.objects, codecs=compact.codecs, dtypes=compact.dtypes,
                   states=compact.states, pending=0)


def checkpoints(objects: ObjectStore) -> list[int]:
    """Sequence numbers of the stored checkpoints, ascending."""
    found = (seq_of(info.key) for info in objects.list("catalog/"))
    return sorted(s for s in found if s is not None)


def load_catalog(objects: ObjectStore, types: Sequence[str]) -> Catalog:
    """The catalog after the newest entry: the newest readable checkpoint, then the log."""
    catalog = Catalog.empty(types)
    for seq in reversed(checkpoints(objects)):
        found = objects.get(catalog_key(seq))
        if found is None:
            continue  # removed by a concurrent clean-up: an older one will do
        try:
            catalog = _from_checkpoint(decode_container(found[0], catalog_key(seq)), types)
            break
        except IntegrityError as exc:
            _log.warning("skipping checkpoint %s: %s", catalog_key(seq), exc)
    return catch_up(objects, catalog)


def catch_up(objects: ObjectStore, catalog: Catalog) -> Catalog:
    """``catalog`` with every listed entry after it folded in (listing, then reads in pages)."""
    keys = [info.key for info in objects.list("log/", start_after=log_key(catalog.seq))]
    keys = [k for k in keys if seq_of(k) is not None]
    for at in range(0, len(keys), _PAGE):
        page = keys[at:at + _PAGE]
        entries = []
        for key, found in zip(page, objects.get_many(page), strict=True):
            if found is None:
                raise IntegrityError(f"log entry {key!r} disappeared while being read")
            entries.append(decode_container(found[0], key))
        catalog = catalog.fold_all(entries)
    return catalog


def _from_checkpoint(container: Container, types: Sequence[str]) -> Catalog:
    header, rows = container.header, container.rows
    names = Names(types, [np.asarray(c, dtype=np.int64 if t == "int" else np.str_)
                          for c, t in zip(header["names"], types, strict=True)])
    return Catalog(seq=int(header["seq"]), names=names, rows=rows,
                   keys=chunk_keys(rows["sid"], rows["chunk"]),
                   objects=tuple(header["objects"]), codecs=tuple(header["codecs"]),
                   dtypes=tuple(header["dtypes"]), states=dict(header["states"]), pending=0)
