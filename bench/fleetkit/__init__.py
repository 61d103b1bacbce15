"""The fleet benchmark behind bench/fleet.py (issue 14): a meter fleet's daily ingest.

- ``data``: the deterministic fleet (one wide float64 block per local day), the read checkers
  and the million-meter long-format Parquet day for ``curvestore ingest``;
- ``runners``: curvestore on a store URL (its one write path ``_cs_write`` and read path
  ``_cs_read_day``), ArcticDB on LMDB and a Parquet lake, behind one ``Runner`` interface;
- ``workload``: backfill, daily cycles, history reads, timed and checked, on one runner;
- ``report``: bench/RESULTS-fleet.md from the results, prose in bench/templates/fleet.md.

Everything here imports numpy and pandas: import it once bench/fleet.py runs in its final
interpreter. It reuses bench/benchkit (environment, machine facts, disk usage, the counting
moto server).
"""
