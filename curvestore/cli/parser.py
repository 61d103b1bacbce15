"""The argument parser: every subcommand, its options and its help text."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from curvestore._version import __version__
from curvestore.cli.commands_ingest import cmd_ingest, parse_size
from curvestore.cli.commands_maintenance import cmd_compact
from curvestore.cli.commands_series import cmd_get, cmd_ls, cmd_put, cmd_rm
from curvestore.cli.commands_store import (
    cmd_create,
    cmd_demo,
    cmd_info,
    cmd_plugins,
    cmd_sql,
    cmd_verify,
)
from curvestore.cli.commands_transfer import cmd_archive, cmd_serve, cmd_sync
from curvestore.cli.common import PROG

__all__ = ["build_parser", "parse_args", "positive_int"]

MODES = ("insert", "update", "replace")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL",
                        help="store URL: file:///abs/path, file://./rel/path, a bare path, "
                             "memory://name, or a plugin's scheme")


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _keyargs(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("key", nargs="*", metavar="key=value", help=help)


def _add(sub: Any, name: str, func: Callable[[argparse.Namespace], int], help: str,
         description: str | None = None) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=description or help,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func, subparser=parser)
    parser.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)  # also accepted after the command
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A store for dense time series (load curves).",
        epilog="Run 'curvestore COMMAND --help' for a command's options. "
               "Try 'curvestore demo' for a one-year, 100-meter walkthrough.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full traceback on errors (for bug reports)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _add(sub, "create", cmd_create, "create a store",
             "Create a store. Its keys, freq, tz and chunking are frozen at creation.\n\n"
             "example: curvestore create file://./data --keys site:str,kind:str "
             "--freq 15min --tz Europe/Paris")
    _url(p)
    p.add_argument("--keys", required=True, metavar="NAME:TYPE,...",
                   help="key attributes in order, TYPE str (default) or int, "
                        "e.g. site:str,year:int")
    p.add_argument("--freq", required=True, help="grid frequency, e.g. 15min, 30min, 1h")
    p.add_argument("--tz", required=True, help="IANA time zone, e.g. Europe/Paris or UTC")
    p.add_argument("--chunking", choices=("month", "year"), default="month",
                   help="one chunk per series per month or year (default: month)")
    p.add_argument("--codec", default="lz4",
                   help="codec for new chunks (default: lz4; see 'curvestore plugins')")
    p.add_argument("--exist-ok", action="store_true",
                   help="succeed if a store with the same configuration already exists")

    p = _add(sub, "info", cmd_info, "show a store's configuration and totals")
    _url(p)
    _json(p)

    p = _add(sub, "ls", cmd_ls, "list series, optionally filtered by key values",
             "List the series of a store, ordered by key.\n\n"
             "example: curvestore ls file://./data kind=load")
    _url(p)
    _keyargs(p, "keep series whose key attributes have these values")
    _json(p)

    p = _add(sub, "put", cmd_put, "write one series from a CSV or parquet file",
             "Write one series from FILE. The first column holds the timestamps (ISO, with a\n"
             "UTC offset; naive ones need --tz); the other column holds the values (several\n"
             "columns need --column). Parquet needs pyarrow.\n\n"
             "example: curvestore put file://./data load.csv site=paris kind=load")
    _url(p)
    p.add_argument("file", metavar="FILE", help="a .csv or .parquet file ('-' reads CSV on stdin)")
    _keyargs(p, "the full series key")
    p.add_argument("--mode", choices=MODES, default="insert",
                   help="insert (default; fails if the series has data), update (merge point by "
                        "point, new values win) or replace (the series becomes the file)")
    p.add_argument("--column", help="the value column to write, when the file has several")
    p.add_argument("--tz", help="time zone of naive timestamps in FILE (they are an error "
                                "without it)")

    p = _add(sub, "ingest", cmd_ingest, "write many series from a long-format file",
             "Write every series of FILE, a long-format table with one row per series and\n"
             "timestamp: key column(s), a time column and a value column, rows in any order.\n"
             "It is read in batches and pivoted without a table per series; input that fits\n"
             "--buffer is checked whole before anything is written, then written in groups\n"
             "of series, one commit each. Larger input is written as it is read and must\n"
             "give each series' rows together (sorted by key). Timestamps with a UTC offset\n"
             "are taken as they are; naive ones need --tz. A progress bar shows on stderr\n"
             "when it is a terminal. Parquet needs pyarrow.\n\n"
             "example: curvestore ingest file://./data day.parquet --key meter --time ts "
             "--value kw --mode update")
    _url(p)
    p.add_argument("file", metavar="FILE", help="a .parquet or .csv file")
    p.add_argument("--key", action="append", default=[], metavar="COLUMN",
                   help="the column of each key attribute, in the store's key order "
                        "(repeatable or comma-separated; default: columns named as the keys)")
    p.add_argument("--time", required=True, metavar="COLUMN", help="the timestamp column")
    p.add_argument("--value", required=True, metavar="COLUMN", help="the value column")
    p.add_argument("--mode", choices=MODES, default="insert",
                   help="insert (default; fails if any series has data), update (merge point "
                        "by point, new values win) or replace (each series becomes its rows)")
    p.add_argument("--tz", help="time zone of naive timestamps (they are an error without it)")
    p.add_argument("--buffer", type=parse_size, default="2G", metavar="SIZE",
                   help="memory for the pivoted values, 9 bytes per series and grid point of "
                        "the input's span (default: 2G)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = _add(sub, "get", cmd_get, "read one series as CSV (stdout) or to a file",
             "Read one series on [--start, --end] (inclusive; naive bounds are in the store's\n"
             "time zone). Rows are timestamp,value; missing points have an empty value.\n\n"
             "example: curvestore get file://./data site=paris kind=load --start 2024-06-01")
    _url(p)
    _keyargs(p, "the full series key")
    p.add_argument("--start", help="first timestamp to read (inclusive)")
    p.add_argument("--end", help="last timestamp to read (inclusive)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE (.csv or .parquet) instead of stdout")

    p = _add(sub, "rm", cmd_rm, "delete series (tombstones their chunks)",
             "Delete one series by its full key, or every series matching a partial key\n"
             "with --all-matching (with no key=value at all, that is every series).")
    _url(p)
    _keyargs(p, "the full series key, or a filter with --all-matching")
    p.add_argument("--all-matching", action="store_true",
                   help="delete every series matching the key=value filter")

    p = _add(sub, "verify", cmd_verify, "check the store: manifest, log, layout, every chunk",
             "Check what the backend keeps besides payloads (for file:// and s3:// stores:\n"
             "every log entry's checksum and that none is missing, the catalog checkpoints,\n"
             "each segment's presence and size), then read back every live chunk (optionally\n"
             "of the series matching key=value), verify its checksum and decode it. Prints one\n"
             "line per problem, goes on, and exits 1 if there is any. A store whose manifest\n"
             "is damaged cannot be opened: that is reported as the one problem.")
    _url(p)
    _keyargs(p, "optional filter on key values")

    p = _add(sub, "compact", cmd_compact, "join appended pieces into whole chunks, clean up",
             "Rewrite the chunks daily appends left in pieces (file://, s3:// and postgresql://\n"
             "stores) into whole chunks, then remove segments nothing refers to any more (file\n"
             "and s3; older than an hour: a commit in flight may still need a newer one).\n"
             "Values, versions\n"
             "and the change feed do not change; readers and writers go on meanwhile, and an\n"
             "interrupted run loses nothing (run it again). Run it daily after the ingest,\n"
             "with --before today to leave the open period to the appends.\n\n"
             "example: curvestore compact file://./loads --before 2024-07-01")
    _url(p)
    _keyargs(p, "optional filter on key values")
    p.add_argument("--before", default=None,
                   help="only chunks whose period ended by then (e.g. today's date)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = _add(sub, "archive", cmd_archive, "copy closed periods to an archive store",
             "Copy every chunk whose period ends before --before from SOURCE to TARGET,\n"
             "verify it there, and with --delete-source tombstone it in SOURCE. Re-running\n"
             "is a no-op; an interrupted run resumes. Read both with a tiered store:\n"
             "tiered://?hot=<SOURCE>&cold=<TARGET> (URLs percent-encoded).\n\n"
             "example: curvestore archive postgresql://db/x?table=t s3://bucket/archive "
             "--before 2024-01-01 --codec pcodec --delete-source")
    p.add_argument("source", metavar="SOURCE", help="store to archive from")
    p.add_argument("target", metavar="TARGET", help="archive store (created beforehand)")
    p.add_argument("--before", required=True, help="cutoff: periods ending by then move")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="only series matching (repeatable)")
    p.add_argument("--codec", help="re-encode for the archive (e.g. pcodec), values verified")
    p.add_argument("--delete-source", action="store_true",
                   help="tombstone archived chunks in SOURCE once verified in TARGET")

    p = _add(sub, "plugins", cmd_plugins,
             "list backends and codecs, who provides them and whether they are installed")
    _json(p)

    _add_sync_commands(sub)

    p = _add(sub, "demo", cmd_demo, "write, read back and verify a year of load curves",
             "Create (or reuse) a filesystem store under --dir, write one year of synthetic\n"
             "15-min load curves, read them back, verify them bit for bit, and print sizes\n"
             "and speeds.")
    p.add_argument("--dir", default="./curvestore-data",
                   help="directory for the demo store, created as DIR/demo "
                        "(default: ./curvestore-data)")
    p.add_argument("--meters", type=positive_int, default=100,
                   help="number of meters (series) to generate (default: 100)")
    p.add_argument("--fresh", action="store_true",
                   help="delete DIR/demo first and start from an empty store")

    p = _add(sub, "sql", cmd_sql, "print the CREATE statements of a PostgreSQL store",
             "Print the SQL that creates a postgresql:// store's tables, for a DBA to run\n"
             "ahead of time; create_store then only inserts the manifest row, so the\n"
             "application's role needs SELECT, INSERT, UPDATE on the tables (and DELETE on\n"
             "the chunk and fragment tables) and USAGE on the changes sequence, not CREATE.\n"
             "With --upgrade, the SQL that moves a store created before the fragment table\n"
             "existed to appended-day fragments (run it with no process holding the store\n"
             "open).\n\n"
             "example: curvestore sql --keys site:str,kind:str --table load_curves")
    p.add_argument("--keys", required=True, metavar="NAME:TYPE,...",
                   help="key attributes in order, as for 'create'")
    p.add_argument("--table", default="load_curves", help="table name (default: load_curves)")
    p.add_argument("--schema", default="public", help="schema name (default: public)")
    p.add_argument("--upgrade", action="store_true",
                   help="print the upgrade of an existing store to appended-day fragments")
    return parser

def _add_sync_commands(sub: Any) -> None:
    p = _add(sub, "serve", cmd_serve, "serve a store's change feed and chunks over HTTP",
             "Serve a store (read-only) for 'curvestore sync' and HTTPSource clients, under\n"
             "waitress, logging one line per request. With --token-file or $CURVESTORE_TOKEN,\n"
             "every request needs 'Authorization: Bearer <token>'; without one, only a\n"
             "loopback --host is accepted unless --allow-anonymous is given. SIGINT/SIGTERM\n"
             "stop it.\n\n"
             "example: curvestore serve file://./data --port 8765 --token-file token.txt")
    _url(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on "
                                                       "(default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0: any free)")
    p.add_argument("--token-file", metavar="F",
                   help="file holding the bearer token (default: $CURVESTORE_TOKEN, else none)")
    p.add_argument("--allow-anonymous", action="store_true",
                   help="serve without a token on an address other than loopback (refused "
                        "otherwise: anyone reaching it could read the store)")
    p.add_argument("--threads", type=positive_int, default=4,
                   help="worker threads (default: 4)")
    p.add_argument("--max-limit", type=positive_int, default=5000,
                   help="most changes per page and chunks per request (default: 5000)")
    p.add_argument("--metrics", action="store_true",
                   help="also serve Prometheus metrics at /metrics, with the same token as "
                        "the API (needs curvestore[metrics])")
    p.add_argument("--metrics-public", action="store_true",
                   help="serve /metrics without the token (implies --metrics): for a port "
                        "only trusted scrapers reach")

    p = _add(sub, "sync", cmd_sync, "replicate a store (local or over HTTP) into another",
             "Copy to TARGET every change of SOURCE since TARGET last synced from it (series,\n"
             "chunk updates, deletions), resumably: an interrupted sync continues where it\n"
             "stopped, and a second run copies nothing. SOURCE is a 'curvestore serve' URL\n"
             "(http://...) or a store URL; TARGET is created with SOURCE's configuration if\n"
             "missing.\n\n"
             "example: curvestore sync http://127.0.0.1:8765 file://./replica --filter kind=load")
    p.add_argument("source", metavar="SOURCE", help="http(s)://host:port of 'curvestore serve', "
                                                     "or a store URL")
    p.add_argument("target", metavar="TARGET_URL", help="the replica's store URL")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="replicate only matching series (repeatable; kept as its own cursor)")
    p.add_argument("--batch", type=positive_int, default=500,
                   help="changes per page, one target commit each (default: 500)")
    p.add_argument("--token-file", metavar="F",
                   help="file holding the bearer token (default: $CURVESTORE_TOKEN)")

def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None
               ) -> argparse.Namespace:
    """Parse ``argv``, letting key=value arguments follow options (``ls URL --json a=b``)."""
    args, extras = parser.parse_known_args(argv)
    if extras and hasattr(args, "key") and all("=" in x and not x.startswith("-")
                                               for x in extras):
        args.key = [*args.key, *extras]
    elif extras:
        getattr(args, "subparser", parser).error(f"unrecognized arguments: {' '.join(extras)}")
    return args
