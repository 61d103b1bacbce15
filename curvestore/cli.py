"""The ``curvestore`` command line: create, inspect, load, export and delete load curves.

Every subcommand is one ``cmd_*`` function taking the parsed arguments and returning an exit
code. Errors curvestore raises on purpose (and OS errors or bad input) print one line
``curvestore: error: <message>`` on stderr and exit with 1; usage errors exit with 2 (argparse);
``--traceback`` shows the full traceback instead. pandas is imported only by the commands
that need it, so ``curvestore --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TextIO

from curvestore import __version__
from curvestore.errors import BackendNotInstalledError, CurvestoreError

if TYPE_CHECKING:
    import pandas as pd

    from curvestore.core.store import Store

__all__ = ["CLIError", "build_parser", "main"]

PROG = "curvestore"
MODES = ("insert", "update", "replace")
PARQUET_HINT = 'pip install "curvestore[parquet]"'
_TZ_SUFFIX = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"


class CLIError(ValueError):
    """Bad command-line input detected by the CLI itself (exit code 1, one line)."""


# -- small helpers ------------------------------------------------------------------------
def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def plural(n: int, word: str) -> str:
    """``plural(1, 'chunk')`` -> ``'1 chunk'``; ``plural(2_000, 'point')`` -> ``'2,000 points'``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def parse_key_spec(spec: str) -> dict[str, str]:
    """``'site:str,year:int'`` -> ``{'site': 'str', 'year': 'int'}`` (type defaults to str)."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, kind = item.partition(":")
        kind = kind.strip() if sep else "str"
        if kind not in ("str", "int"):
            raise CLIError(f"key {name!r}: type must be str or int, got {kind!r}")
        if name.strip() in keys:
            raise CLIError(f"key {name.strip()!r} is given twice in --keys")
        keys[name.strip()] = kind
    if not keys:
        raise CLIError("--keys needs at least one NAME[:str|int], e.g. --keys site:str,kind:str")
    return keys


def parse_pairs(items: Sequence[str]) -> dict[str, str]:
    """``['site=a', 'kind=b']`` -> ``{'site': 'a', 'kind': 'b'}``."""
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CLIError(f"expected key=value, got {item!r}")
        if name in pairs:
            raise CLIError(f"key {name!r} is given twice")
        pairs[name] = value
    return pairs


def typed_key(store: Store, items: Sequence[str]) -> dict[str, Any]:
    """Parse key=value arguments, converting each value to the store's type for that key."""
    pairs = parse_pairs(items)
    types = dict(zip(store.schema.names, store.schema.types, strict=True))
    unknown = [name for name in pairs if name not in types]
    if unknown:
        raise CLIError(f"unknown key {', '.join(map(repr, unknown))}; this store's keys are "
                       f"{', '.join(store.schema.names)}")
    typed: dict[str, Any] = {}
    for name, value in pairs.items():
        if types[name] == "int":
            try:
                typed[name] = int(value)
            except ValueError:
                raise CLIError(f"key {name!r} is an int key; {value!r} is not an integer") from None
        else:
            typed[name] = value
    return typed


def full_key(store: Store, items: Sequence[str], what: str) -> dict[str, Any]:
    """A complete series key from key=value arguments, or a CLIError naming what is missing."""
    key = typed_key(store, items)
    missing = [name for name in store.schema.names if name not in key]
    if missing:
        raise CLIError(f"{what} needs the full series key; missing "
                       f"{', '.join(f'{m}=...' for m in missing)}")
    return key


def show_key(key: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in key.items())


def open_existing(url: str, read_only: bool = False) -> Store:
    from curvestore.core.open import open_store

    return open_store(url, read_only=read_only)


def emit_json(data: Any, out: TextIO | None = None) -> None:
    json.dump(data, out or sys.stdout, indent=2, default=str)
    (out or sys.stdout).write("\n")


# -- reading and writing files ------------------------------------------------------------
def file_format(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".csv", ".csv.gz", ".txt")) or path == "-":
        return "csv"
    raise CLIError(f"{path}: unknown file type; use a .csv or .parquet file")


def require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise CLIError(f"parquet files need pyarrow, which is not installed; install it with: "
                       f"{PARQUET_HINT}") from None


def read_frame(path: str) -> pd.DataFrame:
    """The table in ``path``, its first column the timestamps (a DatetimeIndex is reset)."""
    import pandas as pd

    if file_format(path) == "parquet":
        require_pyarrow()
        frame = pd.read_parquet(path)
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index()
    else:
        frame = pd.read_csv(sys.stdin if path == "-" else path, dtype={0: str})
    if frame.shape[1] < 2:
        raise CLIError(f"{path}: expected a timestamp column and a value column, "
                       f"found {list(map(str, frame.columns))}")
    return frame


def parse_timestamps(column: pd.Series, tz: str | None, path: str) -> pd.DatetimeIndex:
    """Parse a column of timestamps, tz-aware; naive ones only with ``tz`` (then localized)."""
    import pandas as pd

    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(column)
    if pd.api.types.is_datetime64_dtype(column.dtype):
        aware = pd.Series(False, index=column.index)
    else:
        text = column.astype(str).str.strip()
        aware = text.str.contains(_TZ_SUFFIX, regex=True)
        column = text
    if aware.all():
        try:
            return pd.DatetimeIndex(pd.to_datetime(column, utc=True, format="ISO8601"))
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{path}: the first column is not ISO timestamps: {exc}") from None
    if aware.any():
        row = int((~aware).to_numpy().argmax())
        raise CLIError(f"{path}: mixes timestamps with and without a UTC offset "
                       f"(e.g. row {row + 1}: {column.iloc[row]!r})")
    if tz is None:
        raise CLIError(f"{path}: timestamps have no UTC offset (e.g. {column.iloc[0]!r}); "
                       "give their time zone with --tz, e.g. --tz Europe/Paris")
    try:
        naive = pd.DatetimeIndex(pd.to_datetime(column, format="ISO8601"))
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{path}: the first column is not ISO timestamps: {exc}") from None
    try:
        return naive.tz_localize(tz, ambiguous="infer", nonexistent="raise")
    except Exception as exc:  # pytz/zoneinfo raise various types
        raise CLIError(f"{path}: cannot localize the timestamps in {tz}: {exc}") from None


def read_series(path: str, column: str | None, tz: str | None) -> pd.Series:
    """The one value column of ``path`` (or ``column``) indexed by its parsed timestamps."""
    import pandas as pd

    frame = read_frame(path)
    names = [str(c) for c in frame.columns]
    values = names[1:]
    if column is not None:
        if column not in values:
            raise CLIError(f"{path}: no value column {column!r}; columns are {values}")
        chosen = column
    elif len(values) == 1:
        chosen = values[0]
    else:
        raise CLIError(f"{path}: {len(values)} value columns {values}; choose one with --column")
    frame.columns = names
    index = parse_timestamps(frame[names[0]], tz, path)
    return pd.Series(frame[chosen].to_numpy(), index=index, name=chosen)


def write_series(series: pd.Series, path: str | None) -> None:
    """Write ``series`` as a two-column table (timestamp, value): CSV on stdout by default."""
    frame = series.rename("value").rename_axis("timestamp").reset_index()
    if path is None or path == "-":
        frame.to_csv(sys.stdout, index=False)
    elif file_format(path) == "parquet":
        require_pyarrow()
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


# -- subcommands --------------------------------------------------------------------------
def cmd_create(args: argparse.Namespace) -> int:
    from curvestore.core.open import create_store
    from curvestore.core.url import parse_url
    from curvestore.errors import StoreExistsError

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


def cmd_ls(args: argparse.Namespace) -> int:
    with open_existing(args.url, read_only=True) as store:
        keys = store.keys(typed_key(store, args.key))
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
            where = typed_key(store, args.key)
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
    with open_existing(args.url, read_only=True) as store:
        app = AccessLog(make_app(store, token=token, max_limit=args.max_limit))
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
            print(f"serving {store.url} on http://{args.host}:{server.effective_port} "
                  f"(auth: {'bearer token' if token else 'none'}); Ctrl-C stops", flush=True)
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
    from curvestore.core.open import create_store
    from curvestore.errors import StoreNotFoundError

    try:
        return open_existing(url)
    except StoreNotFoundError:
        store = create_store(url, keys={k["name"]: k["type"] for k in manifest["keys"]},
                             freq=manifest["freq"], tz=manifest["tz"],
                             chunking=manifest["chunking"], dtype=manifest["dtype"])
        print(f"created replica store {store.url}", file=sys.stderr)
        return store


def cmd_sync(args: argparse.Namespace) -> int:
    import time

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
            where = typed_key(target, args.filter)
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


# -- parser -------------------------------------------------------------------------------
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
             "Check what the backend keeps besides payloads (for file:// stores: the\n"
             "manifest's checksum, every change-log line, the layout and each shard index\n"
             "against its path and the log), then read back every live chunk (optionally of\n"
             "the series matching key=value), verify its checksum and decode it. Prints one\n"
             "line per problem, goes on, and exits 1 if there is any. A store whose manifest\n"
             "is damaged cannot be opened: that is reported as the one problem.")
    _url(p)
    _keyargs(p, "optional filter on key values")

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
             "application's role needs SELECT, INSERT, UPDATE on the four tables and USAGE on\n"
             "the changes sequence, not CREATE.\n\n"
             "example: curvestore sql --keys site:str,kind:str --table load_curves")
    p.add_argument("--keys", required=True, metavar="NAME:TYPE,...",
                   help="key attributes in order, as for 'create'")
    p.add_argument("--table", default="load_curves", help="table name (default: load_curves)")
    p.add_argument("--schema", default="public", help="schema name (default: public)")
    return parser


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
            total: int | None = len(store.keys(typed_key(store, args.key)))
        except IntegrityError:  # reported with the rest below
            total = None
        with tqdm(total=total, unit=" series", desc="verify", disable=None,
                  file=sys.stderr) as bar:
            def progress(report: Any) -> None:
                bar.update(report.series - bar.n)
                bar.set_postfix(chunks=report.chunks, failures=len(report.failures))

            report = verify_store(store, typed_key(store, args.key), progress)
    for failure in report.failures:
        where = "" if failure.chunk is None else f" chunk {failure.chunk}"
        what = "store" if failure.key is None else show_key(failure.key)
        print(f"FAILED {what}{where}: {failure.message}")
    status = "ok" if report.ok else f"{len(report.failures)} failure(s)"
    print(f"verified {report.series:,} series, {report.chunks:,} chunks, "
          f"{report.payload_bytes:,} payload bytes: {status}", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_archive(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from curvestore.core.archive import archive

    started = time.perf_counter()
    with open_existing(args.source, read_only=not args.delete_source) as source, \
            open_existing(args.target) as target:
        where = typed_key(source, args.filter)
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


def cmd_sql(args: argparse.Namespace) -> int:
    from curvestore.backends.postgres import create_statements
    from curvestore.core.config import KeySchema

    keys = KeySchema.from_spec(parse_key_spec(args.keys))
    for statement in create_statements(keys, table=args.table, schema=args.schema):
        print(f"{statement};\n")
    return 0


# -- entry point --------------------------------------------------------------------------
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


def _cli_wording(exc: BaseException) -> str | None:
    """The message for errors whose own text gives a Python hint (``use open_store``,
    ``mode='update'``): the command-line user gets the option to use instead."""
    from curvestore.errors import SeriesExistsError, StoreExistsError, StoreNotFoundError

    if isinstance(exc, SeriesExistsError):
        shown = ", ".join(show_key(k) for k in exc.keys[:5])
        return (f"series {shown} already has data; write with --mode update (merge point by "
                "point) or --mode replace")
    if isinstance(exc, StoreExistsError) and exc.url:
        return (f"a store already exists at {exc.url}; add --exist-ok to accept one with the "
                "same configuration")
    if isinstance(exc, StoreNotFoundError) and exc.url:
        return (f"no curvestore store at {exc.url}; create one with 'curvestore create "
                f"{exc.url} --keys ... --freq ... --tz ...'")
    return None


def _one_line(exc: BaseException) -> str:
    text = _cli_wording(exc) or str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 usage error, 130 interrupted)."""
    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. `curvestore get ... | head`): not an error.
        with suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (CurvestoreError, OSError, ValueError) as exc:
        if args.traceback:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
