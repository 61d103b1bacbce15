"""The ``curvestore`` command line: create, inspect, load, export and delete load curves.

Every subcommand is one ``cmd_*`` function taking the parsed arguments and returning an exit
code. Errors curvestore raises on purpose (and OS errors or bad input) print one line
``curvestore: error: <message>`` on stderr and exit with 1; usage errors exit with 2 (argparse);
``--traceback`` shows the full traceback instead. pandas is imported only by the commands
that need it, so ``curvestore --help`` stays fast.

The modules: :mod:`~curvestore.cli.parser` (the subcommands and their options),
:mod:`~curvestore.cli.keys` (keys as arguments), :mod:`~curvestore.cli.tables` (CSV and parquet
in and out), and the subcommands by theme: :mod:`~curvestore.cli.commands_store` (a whole
store), :mod:`~curvestore.cli.commands_series` (series in and out),
:mod:`~curvestore.cli.commands_transfer` (serve, sync, archive).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from contextlib import suppress

from curvestore.cli.commands_transfer import is_loopback
from curvestore.cli.common import PROG, CLIError, show_key
from curvestore.cli.keys import parse_key_spec
from curvestore.cli.parser import build_parser, parse_args
from curvestore.errors import CurvestoreError

__all__ = ["CLIError", "build_parser", "is_loopback", "main", "parse_key_spec"]


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
