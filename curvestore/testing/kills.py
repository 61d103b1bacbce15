"""Killing a child process at a chosen moment of its work, for the crash-safety suites."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

__all__ = ["kill_midway"]


def kill_midway(code: str, args: list[str], ready: Path, log: Path, delay: float,
                timeout: float, what: str) -> None:
    """Run ``python -c code *args ready`` until it has created ``ready``, let it run ``delay``
    seconds more, then SIGKILL it. Fails the test if it dies on its own or never starts
    (its stderr, kept in ``log``, is shown)."""
    with open(log, "wb") as err:
        child = subprocess.Popen([sys.executable, "-c", code, *args, str(ready)],
                                 stdout=subprocess.DEVNULL, stderr=err, env={**os.environ})
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if child.poll() is not None:
                pytest.fail(f"the {what} died on its own:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the {what} never started")
            time.sleep(0.01)
        time.sleep(delay)
        if child.poll() is not None:
            pytest.fail(f"the {what} died on its own:\n{log.read_text()}")
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
