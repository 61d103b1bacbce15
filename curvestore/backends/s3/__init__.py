"""S3 backend (boto3, the ``[s3]`` extra, imported lazily): any S3-compatible object store.

URL: ``s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000&region=eu-west-3`` with options

* ``endpoint_url`` (omit for AWS), ``region``, ``profile`` (a boto3 profile name);
* ``max_workers`` (16): concurrent requests per store (chunk GETs of reads and scans, PUTs of
  a commit);
* ``list_page_size`` (1000, the S3 maximum): keys per listing page;
* ``pending_grace`` (60 seconds): age after which an unfinished commit is recovered (below);
* ``single_writer`` (false): see "Services without conditional writes";
* ``shard``: chunks per object (below). Given when a store is created, it is recorded in its
  manifest and every client uses the recorded value (opening with another value is a
  ConfigurationError); the default aims at about 2**17 points per object: 36 month chunks
  (3 calendar years) for 15-minute data, 120 for hourly, 2 for 1-minute, 1 below.

Credentials come only from boto3's chain (environment, shared config and credential files or
``AWS_PROFILE``/``profile=``, instance or container roles); a URL carrying ``user:pass@`` is
refused, and no repr, log line or error message shows more than bucket, prefix, endpoint (its
``user:pass@`` part removed) and the service's error code. Importing this package never needs
boto3; opening a store without it raises BackendNotInstalledError naming the ``s3`` extra.

Layout::

    <prefix>/manifest.json                 created with If-None-Match: * (one creator wins);
                                           also holds {"s3": {"shard": <size>}}
    <prefix>/series/<k1>=<v1>/.../<n>.cvs  shard n of a series: chunks n*size .. (n+1)*size-1
    <prefix>/log/<seq:020d>.json           one object per committed batch (the change feed)
    <prefix>/log-head.json                 a hint to the log's head, rewritten every 100 batches
    <prefix>/sync/<quoted name>.json       replication cursors (Transaction.set_state)
    <prefix>/pending/<txid>.json           intents of commits in progress
    <prefix>/probe/conditional-writes      written once to check the service's conditional writes

**Why shards.** On object storage time and money go by request: one object per month chunk made
a bulk write or read of 50 three-year series cost ~1,850 requests. Like the sharding codec of
zarr v3, a shard object holds consecutive chunks of one series, each in the shared chunk
encoding of :mod:`curvestore.backends._layout` (its own header, header CRC-32 and payload
CRC-32), followed by an index (chunk -> byte span, full meta, id of the transaction that wrote
it) with its own CRC-32 and a fixed trailer
(:mod:`curvestore.backends.s3._object_shard_format`). Names are deterministic, so a read of a
few chunks GETs its shard(s) by name with no listing; when this process knows the shard's index
(it wrote or read the shard), only the chunks' bytes are fetched, with a ranged GET conditional
on the shard's ETag (a changed shard fails the condition and is read whole). A read of a whole
series lists its prefix once; a read of many series lists
``series/`` ONCE, flat and paginated (narrowed to the prefix fixed by the filter's leading
keys), then GETs shards on a bounded pool; metas come from a suffix-ranged GET of a shard's
index, or from the cached index when its ETag is the one a listing shows. A commit rewrites
every shard it touches with one PUT (read-modify-write: untouched chunks are copied byte for
byte). The price: an update of one chunk rewrites its shard (about 1 MB of float64 before
compression with the default size), and concurrent writers of different chunks of one shard
conflict (the core re-runs the loser). Listings are parsed without botocore's dateutil parsing
of LastModified (kept as text).

Guarantees, exactly:

* **Each shard is atomic, so each chunk is.** A shard is one object, written by one PUT:
  readers see the old or the new object, never a torn one. Every read checks the trailer's
  magic and the index's CRC-32, that the index names the series and shard the object's name
  says, and for each chunk returned its framing (magic, header CRC-32, lengths) and that its
  header agrees with the index (IntegrityError otherwise); the core checks the payload's CRC-32
  when decoding.
* **No lost update between concurrent writers.** Transactions are optimistic: ``read`` and
  ``live_metas`` read whole shards and remember each one's ETag (or that it is absent: the
  first listing of a transaction covers all its series, so ``write_many`` lists once); the
  commit writes each touched shard with ``If-Match: <etag>`` (or ``If-None-Match: *`` when it
  was absent), so a writer whose shard changed under it gets 412/409, turned into
  ConflictError, and the core re-runs its whole read-merge-write (up to 20 times). Shards a
  commit did not read are fetched at commit and checked the same way. Versions are the read
  version + 1.
* **A multi-shard batch is NOT atomic** (S3 has no multi-object transaction). Readers may see
  part of a batch while it is being written; a writer that dies mid-commit leaves the shards it
  had written (each whole, each change announced in the feed, see below); and when a conflict
  hits in the middle of a batch, the shards already written that did not exist before are
  deleted again (conditionally on their own ETag), while those it overwrote stay and their
  changes are logged: the core's retry re-reads them and rewrites them idempotently (update
  merges the same points again, replace and delete recompute the same result). ``write_many`` is
  therefore not all-or-nothing on S3: a failure can leave some of its series written, each chunk
  whole.
* **The change feed never under-reports.** A commit (1) PUTs ``pending/<txid>.json`` naming the
  chunks about to change, (2) PUTs the shards holding them (each chunk tagged in its shard's
  index with the txid that last wrote it), (3) PUTs the replication cursors, (4) claims the next
  log sequence with an ``If-None-Match`` PUT of ``log/<seq>.json`` (retrying with the next
  number when another writer took it), and (5) deletes its marker. Since a sequence is only
  claimed by whoever saw the previous one, the log has no gaps and a cursor is the last sequence
  read. A writer that dies between (1) and (4) leaves its marker; any writer (when opening the
  store for writing, and before commits, at most every ``pending_grace / 2`` seconds: one LIST
  of ``pending/``) that finds a marker older than ``pending_grace`` (measured on the service's
  clock) logs the chunks whose index entry still carries that txid and deletes the marker with
  ``If-Match``. A commit in progress refreshes its marker every ``pending_grace / 3`` seconds,
  so live writers are not taken over; if one is (a stall longer than the grace), its chunks are
  announced twice, never zero times. The grace must also exceed the time a request a dead writer
  had already sent can take to land (a PUT queued in the service and applied after the recovery
  looked would otherwise go unannounced): 60 s is far above any S3 request latency;
  ``pending_grace=0`` is for tests and manual repair only.
* **Feed order.** Each change is announced once, in log order, except for the at-least-once
  cases above (a writer presumed dead). Two writers committing the same chunk claim their log
  sequences in the order their claims land, which may differ from the order of their shard
  PUTs: the feed can then show a chunk's versions out of order. Replicas fetch the current
  state of announced chunks, so they converge all the same.
* **Services without conditional writes.** Before its first commit, a store checks once per
  endpoint and bucket that the service answers 412 to a failed ``If-None-Match``/``If-Match``;
  if it does not, writing raises ConfigurationError, unless ``single_writer=true`` is given,
  which writes unconditionally and is only safe when a single process writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curvestore.backends.s3._backend import S3Backend
    from curvestore.backends.s3._client import S3Error

__all__ = ["S3Backend", "S3Error"]


def __getattr__(name: str) -> Any:
    if name == "S3Backend":
        from curvestore.backends.s3._backend import S3Backend

        return S3Backend
    if name == "S3Error":
        from curvestore.backends.s3._client import S3Error

        return S3Error
    raise AttributeError(name)
