"""Subcommands that move a store's data elsewhere: ``serve`` (over HTTP), ``sync`` (into a
replica) and ``archive`` (closed periods into an archive store)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from curvestore._text import human_bytes, plural
from curvestore.cli.common import PROG, CLIError, open_existing
from curvestore.cli.keys import key_filter
from curvestore.errors import BackendNotInstalledError

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["cmd_archive", "cmd_serve", "cmd_sync", "is_loopback", "read_token"]


def read_token(path: str | None) -> str | None:
    """The bearer token from ``path`` (stripped), else from ``$CURVESTORE_TOKEN``, else None."""
    if path is not None:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            raise CLIError(f"{path}: the token file is empty")
        return token
    return os.environ.get("CURVESTORE_TOKEN", "").strip() or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only listens on this machine."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: assume it is reachable from elsewhere


def cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import signal

    try:
        from curvestore.adapters.http.serving import create_server
    except ImportError as exc:
        raise BackendNotInstalledError("curvestore serve", "http", str(exc)) from None
    from curvestore.adapters.http.server import AccessLog, make_app

    token = read_token(args.token_file)
    if token is None and not is_loopback(args.host) and not args.allow_anonymous:
        raise CLIError(f"refusing to serve on {args.host} without a token: anyone who can "
                       "reach it could read the store; give --token-file F (or "
                       "$CURVESTORE_TOKEN), listen on 127.0.0.1, or pass --allow-anonymous")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    metrics = args.metrics or args.metrics_public
    if metrics:
        try:
            from curvestore.adapters.http.metrics import instrument
        except ImportError as exc:
            raise BackendNotInstalledError("curvestore serve --metrics", "metrics",
                                           str(exc)) from None
    with open_existing(args.url, read_only=True) as store:
        synced = make_app(store, token=token, max_limit=args.max_limit)
        app = AccessLog(instrument(synced, public=args.metrics_public) if metrics else synced)
        # refuses unauthenticated and oversized requests before reading their bodies
        server = create_server(app, host=args.host, port=args.port, threads=args.threads)

        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        # both signals, even where SIGINT was ignored at start (e.g. a background job)
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if token is None and not is_loopback(args.host):
                print(f"{PROG}: warning: serving on {args.host} without a token "
                      "(--allow-anonymous): anyone who can reach it can read the store",
                      file=sys.stderr)
            shown = "" if not metrics else \
                f"; metrics: /metrics{' (public)' if args.metrics_public and token else ''}"
            print(f"serving {store.url} on http://{args.host}:{server.effective_port} "
                  f"(auth: {'bearer token' if token else 'none'}{shown}); Ctrl-C stops",
                  flush=True)
            with suppress(KeyboardInterrupt):  # how a server is meant to stop: not an error
                server.run()  # returns on SIGINT/SIGTERM (waitress catches KeyboardInterrupt)
        finally:
            server.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    print("server stopped", file=sys.stderr, flush=True)
    return 0


def _sync_target(url: str, manifest: Mapping[str, Any]) -> Store:
    """The target store at ``url``; created with the source's configuration if absent."""
    from curvestore.errors import StoreNotFoundError
    from curvestore.opening import create_store

    try:
        return open_existing(url)
    except StoreNotFoundError:
        store = create_store(url, keys={k["name"]: k["type"] for k in manifest["keys"]},
                             freq=manifest["freq"], tz=manifest["tz"],
                             chunking=manifest["chunking"], dtype=manifest["dtype"])
        print(f"created replica store {store.url}", file=sys.stderr)
        return store


def cmd_sync(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from curvestore.core.sync import ChangeSource, ReplicationReport, StoreSource, replicate

    token = read_token(args.token_file)
    source: ChangeSource
    if args.source.startswith(("http://", "https://")):
        from curvestore.adapters.http import HTTPSource

        remote = HTTPSource(args.source, token=token)
        source, close = remote, remote.close
    else:
        local = open_existing(args.source, read_only=True)
        source, close = StoreSource(local), local.close
    began = time.perf_counter()
    try:
        with _sync_target(args.target, source.manifest()) as target:
            where = key_filter(target, args.filter)
            with tqdm(unit=" chunks", desc="sync", disable=None, file=sys.stderr) as bar:
                def progress(report: ReplicationReport) -> None:
                    bar.update(report.chunks + report.tombstones - bar.n)
                    mb = report.payload_bytes / 1e6
                    rate = mb / max(time.perf_counter() - began, 1e-9)
                    bar.set_postfix_str(f"{mb:.1f} MB, {rate:.1f} MB/s", refresh=False)

                report = replicate(source, target, filter=where or None, batch=args.batch,
                                   progress=progress)
    finally:
        close()
    took = time.perf_counter() - began
    if not report.changes:
        print(f"already up to date ({took:.2f} s)")
        return 0
    print(f"synced {plural(report.chunks, 'chunk')} and {plural(report.tombstones, 'deletion')} "
          f"({human_bytes(report.payload_bytes)} of payload, {plural(report.changes, 'change')}"
          f" in {plural(report.pages, 'page')}) in {took:.1f} s "
          f"({report.payload_bytes / 1e6 / max(took, 1e-9):.1f} MB/s)")
    return 0

def cmd_archive(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from curvestore.core.archive import archive

    started = time.perf_counter()
    with open_existing(args.source, read_only=not args.delete_source) as source, \
            open_existing(args.target) as target:
        where = key_filter(source, args.filter)
        total = len(source.keys(where))
        with tqdm(total=total, unit=" series", desc="archive", disable=None,
                  file=sys.stderr) as bar:
            def progress(report: Any) -> None:
                bar.update(report.series - bar.n)
                bar.set_postfix(chunks=report.chunks, MB=f"{report.payload_bytes / 1e6:.1f}")

            report = archive(source, target, args.before, filter=where,
                             delete_source=args.delete_source, codec=args.codec,
                             progress=progress)
    rate = report.payload_bytes / 1e6 / max(time.perf_counter() - started, 1e-9)
    print(f"archived {report.chunks:,} chunks ({report.payload_bytes / 1e6:.1f} MB, "
          f"{rate:.1f} MB/s) of {report.series:,} series; {report.skipped:,} already there; "
          f"{report.tombstoned:,} removed from the source", file=sys.stderr)
    return 0
