"""Runs holcstore's own test suite (``hostore/tests`` of the installed holcstore distribution)
against curvestore's Django adapter, or against holcstore itself for the baseline.

    python tests/holcstore_suite/run.py --database sqlite            # against the adapter
    python tests/holcstore_suite/run.py --database postgresql
    python tests/holcstore_suite/run.py --target holcstore --database sqlite --report base.json

Only imports change: with ``--target adapter`` the ``hostore`` store modules resolve to the
adapter's (``aliases.py``); the test modules themselves are holcstore's, imported from the
installed distribution. PostgreSQL runs start a throw-away server
(:mod:`curvestore.testing.postgres_server`, or ``CURVESTORE_TEST_POSTGRES_URL``).

Against the adapter, the run fails when a test listed in ``expected.json`` as passing against
holcstore on that database fails, unless ``expected.json`` lists it as a deliberate difference
(documented in the README). It prints one line of counts and, for such failures, their
tracebacks. ``--report`` writes every test's outcome as JSON (how ``expected.json`` is made).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pkgutil
import sys
import unittest
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected.json"


class RecordingResult(unittest.TextTestResult):
    """A text result that also keeps each test's outcome by id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, str] = {}
        self.tracebacks: dict[str, str] = {}

    def _record(self, test: unittest.TestCase, outcome: str, err: Any = None) -> None:
        # a class or module fixture's error comes as one pseudo-test ("setUpClass (...)"):
        # the tests under it then have no outcome of their own and count as failed
        self.outcomes[test.id()] = outcome
        if err is not None:
            self.tracebacks[test.id()] = self._exc_info_to_string(err, test)

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._record(test, "failed", err)

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._record(test, "failed", err)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skipped")

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "passed")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "failed")


def _test_modules() -> list[str]:
    import hostore.tests as package

    return sorted(f"{package.__name__}.{info.name}"
                  for info in pkgutil.iter_modules(package.__path__)
                  if info.name.startswith("test"))


@contextlib.contextmanager
def _database_url(database: str) -> Iterator[str | None]:
    if database == "sqlite":
        yield None
        return
    import psycopg
    from psycopg import sql

    from curvestore.testing.postgres_server import postgres_server

    with postgres_server() as url:
        # a database of its own, as the server may be a shared one (CURVESTORE_TEST_POSTGRES_URL)
        name = f"holcstore_suite_{uuid.uuid4().hex[:12]}"
        os.environ["HOLCSTORE_SUITE_TEST_DATABASE"] = name
        try:
            yield url
        finally:
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))


def run(target: str, database: str) -> tuple[RecordingResult, list[str]]:
    """Run the whole suite; returns the result and every test id it held."""
    os.environ["HOLCSTORE_SUITE_TARGET"] = target
    os.environ["DJANGO_SETTINGS_MODULE"] = "suite_settings"
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    if target == "adapter":
        import aliases

        aliases.install()
    import django
    from django.test.runner import DiscoverRunner

    django.setup()

    class Runner(DiscoverRunner):
        def get_resultclass(self) -> Any:
            return RecordingResult

        def get_test_runner_kwargs(self) -> dict[str, Any]:
            # tracebacks of tests that fail against holcstore too are noise: printed selectively
            return {**super().get_test_runner_kwargs(), "stream": io.StringIO()}

        def build_suite(self, *args: Any, **kwargs: Any) -> Any:
            suite = super().build_suite(*args, **kwargs)
            self.ids = [test.id() for test in _flatten(suite)]
            return suite

        def run_suite(self, *args: Any, **kwargs: Any) -> Any:
            # what the tests print goes with their tracebacks, not into the run's output
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                self.result = super().run_suite(*args, **kwargs)
            return self.result

    # on PostgreSQL the test database is kept for _database_url to drop
    runner = Runner(verbosity=0, interactive=False, buffer=True,
                    keepdb=database == "postgresql")
    runner.run_tests(_test_modules())
    from django.db import connections

    connections.close_all()
    return runner.result, runner.ids


def _flatten(suite: Any) -> Iterator[unittest.TestCase]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("adapter", "holcstore"), default="adapter")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), required=True)
    parser.add_argument("--report", type=Path, help="write every test's outcome here (JSON)")
    parser.add_argument("--tracebacks", action="store_true",
                        help="print the traceback of every failed test")
    args = parser.parse_args(argv)

    with _database_url(args.database) as url:
        if url:
            os.environ["HOLCSTORE_SUITE_DATABASE_URL"] = url
        result, ids = run(args.target, args.database)
    outcomes = {test_id: result.outcomes.get(test_id, "failed") for test_id in ids}
    outcomes.update({k: v for k, v in result.outcomes.items() if k not in outcomes})
    if args.tracebacks:
        for test_id, trace in sorted(result.tracebacks.items()):
            print(f"\nFAILED {test_id}\n{trace.rstrip()}")
    if args.report:
        args.report.write_text(json.dumps(outcomes, indent=1, sort_keys=True) + "\n")
    counts = {state: sum(1 for v in outcomes.values() if v == state)
              for state in ("passed", "failed", "skipped")}
    against = "the adapter" if args.target == "adapter" else "holcstore"
    print(f"holcstore suite against {against} on {args.database}: {counts['passed']} passed, "
          f"{counts['failed']} failed, {counts['skipped']} skipped")
    if args.target != "adapter":
        return 0
    return _compare(outcomes, args.database, result.tracebacks)


def _compare(outcomes: dict[str, str], database: str, tracebacks: dict[str, str]) -> int:
    """Fail on a test that passes against holcstore but not against the adapter."""
    expected = json.loads(EXPECTED.read_text())
    baseline = set(expected["passing"][database])
    deviations: dict[str, str] = expected["deviations"]
    regressions = sorted(t for t in baseline - deviations.keys()
                         if outcomes.get(t) != "passed")
    differing = sorted(t for t in baseline & deviations.keys() if outcomes.get(t) != "passed")
    print(f"  of the {len(baseline)} tests that pass against holcstore "
          f"{expected['holcstore']}: {len(baseline) - len(regressions) - len(differing)} pass, "
          f"{len(differing)} fail by a deliberate difference (README), "
          f"{len(regressions)} regress")
    for test_id in differing:
        print(f"  deliberate difference: {test_id}: {deviations[test_id]}")
    for test_id in regressions:
        print(f"\nREGRESSION {test_id} ({outcomes.get(test_id, 'not run')})")
        print(tracebacks.get(test_id, "").rstrip())
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
