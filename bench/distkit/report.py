"""bench/RESULTS-distributed.md from a results JSON of bench/distributed.py: tables built
here, prose in bench/templates/distributed.md (a ``string.Template``)."""

from __future__ import annotations

from string import Template
from typing import Any

from benchkit.report import TEMPLATES

TARGETS = {"a": 1.5, "b": 3.0, "c": 1.5}


def _verdict(ratio: float | None, target: float) -> str:
    if ratio is None:
        return "not measured"
    return "met" if ratio >= target else f"missed (target {target:.1f}x)"


def _rows(measure: dict[str, Any], names: list[str]) -> str:
    lines = ["| path | call | median (s) | runs (s) |", "| --- | --- | ---: | --- |"]
    for name in names:
        r = measure.get(name)
        if r is None:
            continue
        lines.append(f"| {name} | `{r['call']}` | {r['median_s']:.3f} | "
                     + " / ".join(f"{t:.3f}" for t in r["times_s"]) + " |")
    return "\n".join(lines)


def _section_a(a: dict[str, Any] | None) -> str:
    if a is None:
        return "(not run)"
    return _rows(a, ["read_many", "dask", "dask_here"]) + (
        f"\n\n{a['partitions']} partitions; read_many / Dask on the cluster: "
        f"**{a['ratio']:.2f}x**.")


def _section_b(b: dict[str, Any] | None, skipped: dict[str, str]) -> str:
    if b is None:
        return "Not measured: " + skipped.get("(b) read_arrow into DuckDB and Polars",
                                              "not run") + "."
    paths = b.get("paths", {})
    lines = ["| path | call | median (s) |", "| --- | --- | ---: |"]
    for name, r in paths.items():
        lines.append(f"| {name} | `{r.get('call', '')}` | {r['median_s']:.3f} |")
    speedups = b.get("speedup_over_pandas", {})
    lines += ["", "Speed-up over `read_many` into pandas: " + ", ".join(
        f"{name} **{v:.2f}x**" for name, v in speedups.items()) + "."]
    return "\n".join(lines)


def _ratio_b(b: dict[str, Any] | None) -> float | None:
    if not b:
        return None
    speedups = b.get("speedup_over_pandas", {})
    found = [speedups[n] for n in ("duckdb", "polars") if n in speedups]
    return min(found) if found else None


def _section_c(c: dict[str, Any] | None, skipped: dict[str, str]) -> str:
    if c is None:
        return "Not measured: " + skipped.get("(c) to_store into PostgreSQL", "not run") + "."
    report = c["to_store"].get("report", {})
    return _rows(c, ["to_store", "ingest", "write_frame"]) + (
        f"\n\n{c['rows']:,} rows in {c['partitions']} partitions; `to_store` reported "
        + ", ".join(f"{k} {v:,}" for k, v in report.items())
        + f"; `ingest` in one process made {c['ingest'].get('commits', '?')} commits. "
        f"ingest / to_store: **{c['ratio']:.2f}x**.")


def _targets(results: dict[str, Any]) -> str:
    a, b, c = results.get("a"), results.get("b"), results.get("c")
    rows = [
        ("(a) read_dask + groupby max on the cluster >= 1.5x faster than read_many",
         None if a is None else a["ratio"], TARGETS["a"]),
        ("(b) read_arrow into DuckDB and Polars >= 3x faster than read_many into pandas",
         _ratio_b(b), TARGETS["b"]),
        ("(c) to_store from the workers into PostgreSQL >= 1.5x faster than one process",
         None if c is None else c["ratio"], TARGETS["c"]),
    ]
    lines = ["| target | measured | verdict |", "| --- | ---: | --- |"]
    for label, ratio, target in rows:
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        lines.append(f"| {label} | {shown} | {_verdict(ratio, target)} |")
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    load = meta["load_average"]
    skipped = results.get("skipped", {})
    values = {
        "command": meta["command"], "date": meta["date"], "run_id": meta["run_id"],
        "elapsed_s": f"{meta['elapsed_s']:.0f}",
        "machine": "\n".join(f"- {k}: {v}" for k, v in meta["machine"].items()),
        "versions": "\n".join(f"- {k}: {v}" for k, v in meta["versions"].items()),
        "load_before": " / ".join(f"{x:.2f}" for x in load["before"]),
        "load_after": " / ".join(f"{x:.2f}" for x in load["after"]),
        "uptime": meta.get("uptime", "-"),
        "meters": f"{meta['meters']:,}", "month": meta["month"],
        "points": f"{meta['points']:,}", "quarter_hours": f"{meta['quarter_hours']:,}",
        "workers": str(meta["workers"]), "runs": str(meta["runs"]),
        "series_per_partition": _read_partitioning(meta, results.get("a")),
        "write_series_per_partition": f"{meta.get('write_series_per_partition', 0):,}",
        "worker_environment": ", ".join(
            f"`{k}={v}`" for k, v in meta.get("worker_environment", {}).items()) or "-",
        "targets_table": _targets(results),
        "section_a": _section_a(results.get("a")),
        "section_b": _section_b(results.get("b"), skipped),
        "section_c": _section_c(results.get("c"), skipped),
        "skipped": "\n".join(f"- {k}: {v}" for k, v in skipped.items()) or "- none",
    }
    return Template((TEMPLATES / "distributed.md").read_text()).substitute(values)


def _read_partitioning(meta: dict[str, Any], a: dict[str, Any] | None) -> str:
    given = meta.get("series_per_partition")
    if given:
        return f"{given:,}"
    if a and "series_per_partition" in a:
        return f"{a['series_per_partition']:,} (read_dask's own sizing)"
    return "read_dask's own sizing of"
