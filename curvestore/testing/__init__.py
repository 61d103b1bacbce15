"""Conformance suites every backend and codec must pass, shipped with the package.

A backend's test module subclasses the suites and provides a ``backend_url`` fixture::

    from curvestore.testing import BackendConformance, StoreSemantics

    class TestMyBackend(BackendConformance, StoreSemantics):
        @pytest.fixture
        def backend_url(self, tmp_path):
            return f"mine://{tmp_path}"

Installed as a pytest plugin (entry point ``pytest11``), so the fixtures below are available
to third-party test suites without any conftest.
"""
