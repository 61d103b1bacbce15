"""bench/RESULTS-fleet.md from a fleet results JSON: tables built here, prose in
bench/templates/fleet.md (a ``string.Template``)."""

from __future__ import annotations

from collections.abc import Callable
from string import Template
from typing import Any

from benchkit.report import TEMPLATES

from .workload import summarise

Fmt = Callable[[dict[str, Any]], str]


def _num(path: tuple[str, ...], fmt: str, scale: float = 1.0) -> Fmt:
    def get(s: dict[str, Any]) -> str:
        value: Any = s
        for part in path:
            if not isinstance(value, dict) or value.get(part) is None:
                return "-"
            value = value[part]
        return fmt.format(value * scale)
    return get


def _metadata(field: str) -> Fmt:
    def get(s: dict[str, Any]) -> str:
        return " / ".join(f"{name} {value * 1e3:.1f}"
                          for name, value in s[field].items()) or "-"
    return get


ROWS: list[tuple[str, Fmt]] = [
    ("backfill, all meters in one call (M points/s)",
     _num(("backfill_points_per_s",), "{:.2f}", 1e-6)),
    ("backfill (s)", _num(("backfill_s",), "{:.2f}")),
    ("backfill: disk bytes written / raw float64 bytes",
     _num(("backfill_write_amplification",), "{:.2f}x")),
    ("one daily append of every meter, median of the days (s)", _num(("append_s",), "{:.3f}")),
    ("each daily append (s)", lambda s: " / ".join(f"{v:.3f}" for v in s["append_s_each"])),
    ("daily append: disk bytes written / raw float64 bytes of the new points",
     _num(("append_write_amplification",), "{:.1f}x")),
    ("daily append: S3 requests", _num(("append_requests",), "{:.0f}")),
    ("yesterday for every meter, median of the days (s)", _num(("read_day_s",), "{:.3f}")),
    ("one meter's full history, median (ms)", lambda s: (
        f"{s['history_ms']:.2f} ({s['history_reads']} reads)")),
    ("metadata calls, first after the append, median of the days (ms)",
     _metadata("metadata_first_s")),
    ("metadata calls, median of 3 calls, median of the days (ms)", _metadata("metadata_s")),
    ("on disk after the appends (bytes/point)", _num(("stored_bytes_per_point",), "{:.2f}")),
]


def _table(runs: list[dict[str, Any]]) -> str:
    lines = ["| | " + " | ".join(f"{r['label']}, {r['meters']:,} meters" for r in runs) + " |",
             "| --- |" + " ---: |" * len(runs)]
    for label, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt(r["summary"]) for r in runs) + " |")
    return "\n".join(lines)


def results_table(results: dict[str, Any]) -> str:
    """One table per history length, a column per system."""
    runs = [r for r in results["runs"] if "summary" in r]
    if not runs:
        return "(nothing measured)"
    out = []
    for days in sorted({r["days_stored"] for r in runs}):
        out.append(f"### {days} days stored before the appends\n\n"
                   + _table([r for r in runs if r["days_stored"] == days]))
    return "\n\n".join(out)


def api_table(results: dict[str, Any]) -> str:
    seen: dict[str, dict[str, str]] = {}
    for run in results["runs"]:
        seen.setdefault(run["label"], run.get("calls", {}))
    ops = ["backfill", "append", "read_day", "history", "metadata"]
    lines = ["| system | " + " | ".join(ops) + " |", "| --- |" + " --- |" * len(ops)]
    for label, calls in seen.items():
        lines.append(f"| {label} | " + " | ".join(f"`{calls.get(o, '-')}`" for o in ops) + " |")
    return "\n".join(lines)


def _find(results: dict[str, Any], scheme: str, days: int | None = None
          ) -> dict[str, Any] | None:
    for run in results["runs"]:
        if run.get("scheme") == scheme and "summary" in run and (
                days is None or run["days_stored"] == days):
            return run
    return None


def _verdict(value: float | None, limit: float, at_most: bool = True) -> str:
    if value is None:
        return "not measured"
    ok = value <= limit if at_most else value >= limit
    ratio = value / limit if at_most else limit / value
    return "met" if ok else f"missed ({ratio:.1f}x the target)"


def targets_table(results: dict[str, Any]) -> str:
    """Issue 14's "Done when" figures that this harness measures, against the runs here."""
    rows: list[tuple[str, str, str]] = []
    file_runs = sorted((r for r in results["runs"] if r.get("scheme") == "file"
                        and "summary" in r), key=lambda r: r["days_stored"])
    for run in file_runs:
        s, d = run["summary"], run["days_stored"]
        where = f"file, {run['meters']:,} meters, {d} days"
        rows += [
            (f"{where}: daily append <= 0.3 s", f"{s['append_s']:.3f} s",
             _verdict(s["append_s"], 0.3)),
            (f"{where}: disk bytes written <= 1.5x raw",
             "-" if s["append_write_amplification"] is None
             else f"{s['append_write_amplification']:.1f}x",
             _verdict(s["append_write_amplification"], 1.5)),
            (f"{where}: yesterday for every meter <= 0.2 s", f"{s['read_day_s']:.3f} s",
             _verdict(s["read_day_s"], 0.2)),
            (f"{where}: one meter's history <= 1 ms median", f"{s['history_ms']:.2f} ms",
             _verdict(s["history_ms"], 1.0)),
        ]
        rows += [(f"{where}: {name}() <= 50 ms", f"{v * 1e3:.0f} ms", _verdict(v, 0.05))
                 for name, v in s["metadata_s"].items()]
        rows.append((f"{where}: backfill >= 15 M points/s",
                     f"{s['backfill_points_per_s'] / 1e6:.2f} M/s",
                     _verdict(s["backfill_points_per_s"] / 1e6, 15.0, at_most=False)))
    if len(file_runs) >= 2:
        lo, hi = file_runs[0]["summary"], file_runs[-1]["summary"]
        ratio = hi["append_s"] / lo["append_s"]
        rows.append((f"file: append with {file_runs[-1]['days_stored']} days within 1.3x of "
                     f"{file_runs[0]['days_stored']} days", f"{ratio:.2f}x",
                     _verdict(ratio, 1.3)))
    for month in results.get("months", []):
        scheme = month.get("scheme", "file")
        where = f"{scheme}, {month['meters']:,} meters, a month of appends"
        unc = month["history_uncompacted"]["median_ms"]
        rows += [
            (f"{where}: one meter's history <= 1 ms median, uncompacted", f"{unc:.2f} ms",
             _verdict(unc, 1.0)),
            (f"{where}: compaction costs no more than write_frame of the month fresh "
             f"(medians of {month.get('repeats', 1)} runs)",
             f"{month['compact']['s']:.2f} s vs {month['fresh']['s']:.2f} s "
             f"({month['compact_over_fresh_s']:.2f}x)",
             _verdict(month["compact_over_fresh_s"], 1.0) if scheme == "file"
             else "no target (the target is file's); measured"),
        ]
    s3 = _find(results, "s3")
    if s3 is not None:
        s, where = s3["summary"], f"s3 (moto), {s3['meters']:,} meters, {s3['days_stored']} days"
        rows += [(f"{where}: daily append <= 1 s", f"{s['append_s']:.3f} s",
                  _verdict(s["append_s"], 1.0)),
                 (f"{where}: <= 20 requests per append", f"{s['append_requests']:.0f}",
                  _verdict(s["append_requests"], 20))]
        if "keys" in s["metadata_s"]:
            verdict = _verdict(s["metadata_s"]["keys"], 0.2)
            if s3["meters"] != 10_000:
                verdict += f" at {s3['meters']:,} series (the target is at 10,000)"
            rows.append((f"{where}: keys() <= 0.2 s", f"{s['metadata_s']['keys']:.3f} s",
                         verdict))
    pg = _find(results, "postgresql")
    if pg is not None:
        s = pg["summary"]
        rows.append((f"postgresql, {pg['meters']:,} meters, {pg['days_stored']} days: "
                     "daily append <= 1 s",
                     f"{s['append_s']:.3f} s", _verdict(s["append_s"], 1.0)))
    if not rows:
        return "(no curvestore run to compare with the targets)"
    return "\n".join(["| target | measured | verdict |", "| --- | ---: | --- |",
                      *(f"| {a} | {b} | {c} |" for a, b, c in rows)])


def month_table(results: dict[str, Any]) -> str:
    months = results.get("months", [])
    if not months:
        return "(not run)"
    rows = [
        ("daily append, median of the 31 (s)", lambda m: f"{m['append_s_median']:.3f}"),
        ("one meter's history over the uncompacted month, median (ms)",
         lambda m: f"{m['history_uncompacted']['median_ms']:.2f}"),
        ("compaction of the month, median (s)", lambda m: f"{m['compact']['s']:.2f}"),
        ("compaction, every run (s)",
         lambda m: " / ".join(f"{x:.2f}" for x in m.get("compact_runs_s", [m["compact"]["s"]]))),
        ("compaction: disk bytes written / raw float64 bytes",
         lambda m: f"{m['compact'].get('write_amplification', float('nan')):.2f}x"),
        ("write_frame of the month into an empty store, median (s)",
         lambda m: f"{m['fresh']['s']:.2f}"),
        ("write_frame fresh, every run (s)",
         lambda m: " / ".join(f"{x:.2f}" for x in m.get("fresh_runs_s", [m["fresh"]["s"]]))),
        ("write_frame fresh: disk bytes written / raw float64 bytes",
         lambda m: f"{m['fresh'].get('write_amplification', float('nan')):.2f}x"),
        ("compaction / fresh write, time (medians)",
         lambda m: f"{m['compact_over_fresh_s']:.2f}x"),
        ("one meter's history after compaction, median (ms)",
         lambda m: f"{m['history_compacted']['median_ms']:.2f}"),
        ("the month for every meter after compaction (`read_frame`, s)",
         lambda m: f"{m['read_month_s']:.2f}"),
    ]
    lines = ["| | " + " | ".join(f"{m['label']}, {m['meters']:,} meters" for m in months)
             + " |", "| --- |" + " ---: |" * len(months)]
    lines += [f"| {label} | " + " | ".join(fmt(m) for m in months) + " |"
              for label, fmt in rows]
    return "\n".join(lines)


def _bullets(d: dict[str, Any]) -> str:
    return "\n".join(f"- {k}: {v}" for k, v in d.items())


def render(results: dict[str, Any]) -> str:
    for run in results["runs"]:  # from the raw numbers, so older results get newer rows
        if "days" in run:
            run["summary"] = summarise(run)
    meta = results["meta"]
    load = meta["load_average"]
    skipped = "\n".join(f"- {name}: {why}" for name, why in meta.get("skipped", {}).items())
    values = {
        "command": meta["command"],
        "date": meta["date"],
        "run_id": meta["run_id"],
        "elapsed_s": f"{meta['elapsed_s']:.0f}",
        "machine": _bullets(meta["machine"]),
        "load_before": " / ".join(f"{x:.2f}" for x in load["before"]),
        "load_after": " / ".join(f"{x:.2f}" for x in load["after"]),
        "uptime": meta.get("uptime", "-"),
        "versions": _bullets(meta["versions"]),
        "meters": f"{meta['meters']:,}",
        "days": ", ".join(str(d) for d in meta["days"]),
        "appends": str(meta["appends"]),
        "first_append": meta["first_append"],
        "history_reads": str(meta["history_reads"]),
        "results_table": results_table(results),
        "targets_table": targets_table(results),
        "api_table": api_table(results),
        "month_table": month_table(results),
        "skipped": skipped or "- none",
    }
    return Template((TEMPLATES / "fleet.md").read_text()).substitute(values)
