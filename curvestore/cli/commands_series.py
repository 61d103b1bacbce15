"""Subcommands on series: ``ls``, ``put`` (a file in), ``get`` (a file out), ``rm``."""

from __future__ import annotations

import argparse
import sys

from curvestore._text import plural
from curvestore.cli.common import CLIError, emit_json, open_existing, show_key
from curvestore.cli.keys import full_key, key_filter
from curvestore.cli.tables import file_format, read_series, require_pyarrow, write_series

__all__ = ["cmd_get", "cmd_ls", "cmd_put", "cmd_rm"]


def cmd_ls(args: argparse.Namespace) -> int:
    with open_existing(args.url, read_only=True) as store:
        keys = store.keys(key_filter(store, args.key))
        names = list(store.schema.names)
    if args.json:
        emit_json(keys)
        return 0
    table = [names] + [[str(k[n]) for n in names] for k in keys]
    widths = [max(len(row[i]) for row in table) for i in range(len(names))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"({len(keys):,} series)", file=sys.stderr)
    return 0


def cmd_put(args: argparse.Namespace) -> int:
    with open_existing(args.url) as store:
        key = full_key(store, args.key, "put")
        series = read_series(args.file, args.column, args.tz)
        chunks = store.write(key, series, mode=args.mode)
    valid = int(series.notna().sum())
    if not valid and args.mode == "replace":  # replaced by nothing: the series is deleted
        print(f"no value in {args.file}: deleted {show_key(key)} ({plural(chunks, 'chunk')} "
              "tombstoned, mode=replace)")
        return 0
    print(f"wrote {plural(valid, 'point')} to {show_key(key)} ({plural(chunks, 'chunk')}, "
          f"mode={args.mode})")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    if args.output not in (None, "-") and file_format(args.output) == "parquet":
        require_pyarrow()  # fail before reading
    with open_existing(args.url, read_only=True) as store:
        key = full_key(store, args.key, "get")
        series = store.read(key, start=args.start, end=args.end)
    if series is None:
        window = "" if args.start is None and args.end is None else (
            f" between {args.start or 'the start'} and {args.end or 'the end'}")
        raise CLIError(f"no data for series {show_key(key)}{window}")
    write_series(series, args.output)
    if args.output not in (None, "-"):
        print(f"wrote {plural(len(series), 'row')} to {args.output}", file=sys.stderr)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with open_existing(args.url) as store:
        if args.all_matching:
            where = key_filter(store, args.key)
            matched = len(store.keys(where))
            chunks = store.delete_many(where)
            scope = f"{matched:,} series matching {show_key(where) or 'everything'}"
        else:
            if not args.key:
                raise CLIError("rm needs a series key (key=value ...), or a filter with "
                               "--all-matching")
            key = full_key(store, args.key, "rm without --all-matching")
            chunks = store.delete(key)
            if chunks == 0:
                raise CLIError(f"no series {show_key(key)}")
            scope = f"series {show_key(key)}"
    print(f"deleted {plural(chunks, 'chunk')} ({scope})")
    return 0
