"""Run holcstore 0.6.7 itself, in an environment of its own, on the test run's database.

CI installs that environment and names its python in ``CURVESTORE_TEST_HOLCSTORE_PYTHON``;
elsewhere the benchmark's environment (bench/.venv) serves when it exists, and the tests that
need it skip without it (fail under CI, where the variable is set)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from django.db import connections

HOLC_PYTHON = Path(os.environ.get("CURVESTORE_TEST_HOLCSTORE_PYTHON") or
                   Path(__file__).resolve().parents[3] / "bench" / ".venv" / "bin" / "python")

#: Configures Django in the child on the database given as JSON in ``sys.argv[1]``.
PREAMBLE = r"""
import json, sys
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["hostore"], USE_TZ=True, TIME_ZONE="UTC",
                   DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
                   DATABASES={"default": json.loads(sys.argv[1])})
django.setup()
"""

#: Ends the child once its script has run and printed: pyarrow 26 (holcstore's Parquet and
#: Feather) sometimes aborts in its interpreter teardown ("terminate called without an
#: active exception", seen in a bare read_parquet script too), after the work is done.
EPILOGUE = r"""
import os
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


def run_holcstore(database: str, script: str, *args: str) -> dict:
    """Run ``PREAMBLE + script`` under holcstore's python on ``database``; its last line
    of output, as JSON."""
    if not HOLC_PYTHON.exists():
        if os.environ.get("CURVESTORE_TEST_HOLCSTORE_PYTHON"):
            pytest.fail(f"CURVESTORE_TEST_HOLCSTORE_PYTHON={HOLC_PYTHON} does not exist")
        pytest.skip("no holcstore environment (bench/.venv or CURVESTORE_TEST_HOLCSTORE_PYTHON)")
    settings_dict = connections[database].settings_dict
    db = {k: settings_dict[k] for k in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")}
    done = subprocess.run([str(HOLC_PYTHON), "-c", PREAMBLE + script + EPILOGUE, json.dumps(db),
                           *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
