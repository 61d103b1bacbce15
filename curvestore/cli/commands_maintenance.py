"""Subcommands that maintain a store: ``compact``."""

from __future__ import annotations

import argparse
import sys

from curvestore._text import human_bytes
from curvestore.cli.common import emit_json, open_existing
from curvestore.cli.keys import key_filter

__all__ = ["cmd_compact"]


def cmd_compact(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    with open_existing(args.url) as store, tqdm(
            total=None, unit=" chunks", desc="compact", disable=None if not args.quiet else True,
            file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = store.compact(key_filter(store, args.key), before=args.before,
                               progress=progress)
    if args.json:
        emit_json(report)
        return 0
    removed = ("" if "segments_removed" not in report else  # backends without segments
               f"; removed {report['segments_removed']:,} unused segments "
               f"({human_bytes(report['bytes_removed'])})")
    print(f"compacted {report['chunks']:,} chunks ({report['rows']:,} pieces, "
          f"{human_bytes(report['bytes_read'])} read, "
          f"{human_bytes(report['bytes_written'])} written){removed} in "
          f"{report['seconds']:.1f} s")
    return 0
