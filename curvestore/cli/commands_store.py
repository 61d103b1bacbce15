"""Subcommands about a whole store: ``create``, ``info``, ``verify``, ``sql``, and the
installation: ``plugins``, ``demo``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from curvestore._text import human_bytes
from curvestore.cli.common import CLIError, emit_json, open_existing, show_key
from curvestore.cli.keys import key_filter, parse_key_spec
from curvestore.errors import BackendNotInstalledError, CurvestoreError

__all__ = ["cmd_create", "cmd_demo", "cmd_info", "cmd_plugins", "cmd_sql", "cmd_verify"]


def cmd_create(args: argparse.Namespace) -> int:
    from curvestore.core.url import parse_url
    from curvestore.errors import StoreExistsError
    from curvestore.opening import create_store

    if "codec" in parse_url(args.url).options:
        raise CLIError("give the codec as --codec, not in the URL")
    spec: dict[str, Any] = dict(
        keys=parse_key_spec(args.keys), freq=args.freq, tz=args.tz, chunking=args.chunking,
        codec=args.codec,
    )
    existed = False
    try:
        store = create_store(args.url, **spec)
    except StoreExistsError:
        if not args.exist_ok:
            raise
        store = create_store(args.url, exist_ok=True, **spec)
        existed = True
    with store:
        keys = ", ".join(f"{n}:{t}" for n, t in zip(store.schema.names, store.schema.types,
                                                      strict=True))
        verb = "exists (same configuration)" if existed else "created"
        print(f"store {verb}: {store.url}")
        print(f"  keys {keys}; freq {store.config.freq}; tz {store.config.tz}; "
              f"{store.config.chunking} chunks; codec {store.codec}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with open_existing(args.url, read_only=True) as store:
        info = store.info()
        last = store.max_timestamp()
    info["max_timestamp"] = None if last is None else last.isoformat()
    if args.json:
        emit_json(info)
        return 0
    per_point = info["bytes_per_point"]
    rows = [
        ("url", info["url"]),
        ("backend", info["backend"]),
        ("keys", ", ".join(f"{k}:{t}" for k, t in info["keys"].items())),
        ("freq", info["freq"]),
        ("time zone", info["tz"]),
        ("chunking", info["chunking"]),
        ("dtype", info["dtype"]),
        ("codec", info["codec"]),
        ("store id", info["store_id"]),
        ("series", f"{info['series']:,}"),
        ("chunks", f"{info['chunks']:,}"),
        ("points", f"{info['points']:,}"),
        ("payload", f"{human_bytes(info['payload_bytes'])} ({info['payload_bytes']:,} bytes)"),
        ("bytes/point", f"{per_point:.3f} (float64 is 8: {8 / per_point:.1f}x smaller)"
         if per_point else "-"),
        ("latest point", info["max_timestamp"] or "-"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0

def cmd_verify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from curvestore.core.verify import verify_store
    from curvestore.errors import IntegrityError

    try:
        opened = open_existing(args.url, read_only=True)
    except IntegrityError as exc:  # a damaged manifest: nothing else can be trusted
        print(f"FAILED store: {exc}")
        print("verify stopped: the store cannot be opened", file=sys.stderr)
        return 1
    with opened as store:
        try:
            total: int | None = len(store.keys(key_filter(store, args.key)))
        except IntegrityError:  # reported with the rest below
            total = None
        with tqdm(total=total, unit=" series", desc="verify", disable=None,
                  file=sys.stderr) as bar:
            def progress(report: Any) -> None:
                bar.update(report.series - bar.n)
                bar.set_postfix(chunks=report.chunks, failures=len(report.failures))

            report = verify_store(store, key_filter(store, args.key), progress)
    for failure in report.failures:
        where = "" if failure.chunk is None else f" chunk {failure.chunk}"
        what = "store" if failure.key is None else show_key(failure.key)
        print(f"FAILED {what}{where}: {failure.message}")
    status = "ok" if report.ok else f"{len(report.failures)} failure(s)"
    print(f"verified {report.series:,} series, {report.chunks:,} chunks, "
          f"{report.payload_bytes:,} payload bytes: {status}", file=sys.stderr)
    return 0 if report.ok else 1

def cmd_sql(args: argparse.Namespace) -> int:
    from curvestore.backends.postgres import create_statements, upgrade_statements
    from curvestore.core.config import KeySchema

    keys = KeySchema.from_spec(parse_key_spec(args.keys))
    make = upgrade_statements if args.upgrade else create_statements
    statements = make(keys, table=args.table, schema=args.schema)
    if args.upgrade:
        print("BEGIN;\n")
    for statement in statements:
        print(f"{statement};\n")
    if args.upgrade:
        print("COMMIT;")
    return 0

def plugin_status(kind: str, name: str) -> tuple[bool, str]:
    """(installed, note) for one registered backend or codec: installed only if its module
    and the library it drives (psycopg, boto3, zstandard, pcodec...) import here."""
    from curvestore.registry import get_backend_class, get_codec

    try:
        if kind == "codec":
            get_codec(name)  # runs the codec's check_available()
        else:
            get_backend_class(name)  # runs the backend's check_available()
    except BackendNotInstalledError as exc:
        hint = f'pip install "curvestore[{exc.extra}]"' if exc.extra else str(exc)
        return False, f"missing: {hint}"
    except CurvestoreError as exc:
        return False, f"broken: {exc}"
    return True, "installed"


def cmd_plugins(args: argparse.Namespace) -> int:
    from curvestore.registry import get_registry

    registry = get_registry()
    rows: list[dict[str, Any]] = []
    for kind, table in (("backend", registry.backends), ("codec", registry.codecs)):
        for name in sorted(table):
            entry = table[name]
            installed, status = plugin_status(kind, name)
            rows.append({"kind": kind, "name": name, "distribution": entry.distribution,
                         "extra": entry.extra, "target": entry.target,
                         "installed": installed, "status": status})
    if args.json:
        emit_json(rows)
        return 0
    for kind, title in (("backend", "Backends (URL schemes)"), ("codec", "Codecs")):
        print(f"{title}:")
        group = [r for r in rows if r["kind"] == kind]
        lines: list[list[str]] = [["name", "provided by", "extra", "status"]] + [
            [f"{r['name']}://" if kind == "backend" else r["name"], r["distribution"],
             f"[{r['extra']}]" if r["extra"] else "-", r["status"]] for r in group]
        widths = [max(len(line[i]) for line in lines) for i in range(3)]
        for row in lines:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False))
                  + "  " + row[3])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from curvestore.demo import run_demo

    return run_demo(args.dir, meters=args.meters, fresh=args.fresh)
