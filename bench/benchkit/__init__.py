"""The benchmark harness behind bench/run.py, shared by bench/s3.py, fleet.py,
django_adapter.py and sync.py.

- ``env``: paths, bench/.venv and re-executing a script inside it;
- ``system``: the ``System`` interface every benchmarked store implements, the workload's shape;
- ``peers``: ArcticDB and holcstore; ``curvestore_system``: curvestore on any store URL;
- ``postgres``: URLs, table sizes and server facts for PostgreSQL runs;
- ``moto``: a moto S3 server in a child process that counts the requests it serves;
- ``data``: the data sets, the operations' inputs and the read-back check;
- ``measure``: timing one system through the workload, medians, the machine's facts;
- ``report``: RESULTS.md from a results JSON, with its prose in bench/templates/*.md;
- ``fold``: the other benchmarks' RESULTS-<name>.md pages folded into RESULTS.md.

``data`` and ``measure`` import numpy and pandas; the other modules load with any Python, so
that a script can import them before it has re-executed itself inside bench/.venv.
"""
