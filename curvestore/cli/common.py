"""What every subcommand shares: the program name, the CLI's own error, opening a store,
showing a key, printing JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["PROG", "CLIError", "emit_json", "open_existing", "show_key"]

PROG = "curvestore"


class CLIError(ValueError):
    """Bad command-line input detected by the CLI itself (exit code 1, one line)."""


def show_key(key: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in key.items())


def open_existing(url: str, read_only: bool = False) -> Store:
    from curvestore.opening import open_store

    return open_store(url, read_only=read_only)


def emit_json(data: Any, out: TextIO | None = None) -> None:
    json.dump(data, out or sys.stdout, indent=2, default=str)
    (out or sys.stdout).write("\n")
