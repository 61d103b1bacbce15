"""``curvestore ingest``: a long-format file (one row per series and timestamp) into a store,
streamed, with a progress bar on stderr when it is a terminal."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

from curvestore._text import plural
from curvestore.cli.common import CLIError, open_existing

if TYPE_CHECKING:
    from curvestore.core.ingest import IngestProgress

__all__ = ["cmd_ingest", "parse_size"]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``'2G'``, ``'512M'``, ``'1.5GiB'``, ``'1000000'`` -> bytes (binary multiples)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 2G or 512M")
    value = float(match.group(1)) * 1024 ** "_KMGT".index(match.group(2).upper() or "_")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is too small")
    return int(value)


class _Progress:
    """Two tqdm bars on stderr: rows while reading, then series while writing (both when a
    large input is written as it is read). tqdm shows nothing unless stderr is a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.disable: bool | None = True if quiet else None
        self.reading: Any = None
        self.writing: Any = None

    def __call__(self, p: IngestProgress) -> None:
        from tqdm import tqdm

        if p.phase == "read":
            if self.reading is None:
                self.reading = tqdm(total=p.rows_total, unit=" rows", unit_scale=True,
                                    desc="read", disable=self.disable, file=sys.stderr)
            self.reading.update(p.rows - self.reading.n)
            self.reading.set_postfix_str(f"{p.series:,} series", refresh=False)
            return
        if self.writing is None:
            if p.read_all and self.reading is not None:
                self.reading.close()
            self.writing = tqdm(total=p.series if p.read_all else None, unit=" series",
                                unit_scale=True, desc="write", disable=self.disable,
                                file=sys.stderr)
        self.writing.update(p.series_written - self.writing.n)
        self.writing.set_postfix_str(plural(p.commits, "commit"), refresh=False)

    def close(self) -> None:
        for bar in (self.reading, self.writing):
            if bar is not None:
                bar.close()


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.file == "-":
        raise CLIError("ingest reads a file (.parquet or .csv), not stdin")
    keys = [k.strip() for item in args.key for k in item.split(",") if k.strip()] or None
    progress = _Progress(args.quiet)
    with open_existing(args.url) as store:
        try:
            report = store.ingest(args.file, key_columns=keys, time_column=args.time,
                                  value_column=args.value, mode=args.mode, tz=args.tz,
                                  buffer_bytes=args.buffer, progress=progress)
        finally:
            progress.close()
    rate = report.rows / max(report.seconds, 1e-9)
    print(f"ingested {plural(report.rows, 'row')} of {report.series:,} series: "
          f"{plural(report.points, 'point')} in {plural(report.chunks, 'chunk')}, "
          f"{plural(report.commits, 'commit')} (mode={args.mode}), {report.seconds:.1f} s "
          f"({rate:,.0f} rows/s; read {report.read_seconds:.1f} s, encode "
          f"{report.encode_seconds:.1f} s, commit {report.commit_seconds:.1f} s)")
    return 0
