"""The report: the results JSON of a run rendered into RESULTS.md (or RESULTS-postgres.md).

The tables are built here from the measured numbers; the prose (workload description, targets
explanation, analysis and notes) lives in bench/templates/*.md, ``string.Template`` files whose
``${name}`` placeholders are filled with measured values. Also the pieces the other benchmarks'
reports share: the rows, the API table and the target verdicts.
"""

from __future__ import annotations

from string import Template
from typing import Any

from .env import BENCH
from .fold import folded_sections
from .system import FREQ, PEERS, TZ

TEMPLATES = BENCH / "templates"

ROWS = [  # (result path, label, format)
    (("write_many_s",), "write_many, all series (s)", "{:.3f}"),
    (("read_each_s",), "full read of each series, total (s)", "{:.3f}"),
    (("read_many_s",), "read_many over all series (s)", "{:.3f}"),
    (("read_month", "median_ms"), "1-month read, median (ms)", "{:.2f}"),
    (("read_month", "p95_ms"), "1-month read, p95 (ms)", "{:.2f}"),
    (("update_week", "median_ms"), "1-week update, median (ms)", "{:.2f}"),
    (("update_week", "p95_ms"), "1-week update, p95 (ms)", "{:.2f}"),
    (("bytes_per_point",), "bytes per point on disk", "{:.2f}"),
]

# (label, dataset or None for all, metric path, peer, kind, threshold)
#   kind "throughput": peer_time / time >= threshold; "latency"/"size": value / peer <= threshold
TARGETS = [
    ("write_many >= 0.5x ArcticDB write_batch throughput", None, ("write_many_s",), "arcticdb",
     "throughput", 0.5),
    ("write_many >= 5x holcstore set_many_ts throughput", None, ("write_many_s",), "holcstore",
     "throughput", 5.0),
    ("full reads >= 1.5x ArcticDB read throughput", None, ("read_each_s",), "arcticdb",
     "throughput", 1.5),
    ("read_many >= 1.5x ArcticDB read_batch throughput", None, ("read_many_s",), "arcticdb",
     "throughput", 1.5),
    ("1-month read median <= 0.3x ArcticDB", None, ("read_month", "median_ms"), "arcticdb",
     "latency", 0.3),
    ("1-week update median <= 0.5x ArcticDB", None, ("update_week", "median_ms"), "arcticdb",
     "latency", 0.5),
    ("bytes/point on random data <= holcstore", "random", ("bytes_per_point",), "holcstore",
     "size", 1.0),
]


# PostgreSQL runs: curvestore on PostgreSQL against holcstore on the same server (issue 3)
TARGETS_PG = [
    ("write_many >= 8x holcstore set_many_ts throughput", None, ("write_many_s",), "holcstore",
     "throughput", 8.0),
    ("full reads >= 4x holcstore get_ts throughput", None, ("read_each_s",), "holcstore",
     "throughput", 4.0),
    ("read_many >= 4x holcstore yield_many_ts throughput", None, ("read_many_s",), "holcstore",
     "throughput", 4.0),
    ("1-month read median <= 0.4x holcstore", None, ("read_month", "median_ms"), "holcstore",
     "latency", 0.4),
    ("1-month read p95 <= 0.4x holcstore", None, ("read_month", "p95_ms"), "holcstore",
     "latency", 0.4),
    ("1-week update median <= 0.25x holcstore", None, ("update_week", "median_ms"),
     "holcstore", "latency", 0.25),
    ("bytes/point <= holcstore", None, ("bytes_per_point",), "holcstore", "size", 1.0),
]


def api_table(api: dict[str, dict[str, str]]) -> list[str]:
    """The markdown table of each system's call per operation (``api``: label -> calls)."""
    lines = ["| operation | " + " | ".join(api) + " |", "|" + " --- |" * (len(api) + 1)]
    for op in ["write_many", "read_each", "read_many", "read_month", "update_week", "bytes"]:
        lines.append(f"| {op} | " + " | ".join(f"`{calls.get(op, '')}`"
                                                for calls in api.values()) + " |")
    return lines


def verdict(kind: str, ours: float, theirs: float, threshold: float) -> tuple[float, bool]:
    """(ratio, met) of a target: a throughput ratio is peer time / our time (at least
    ``threshold``), any other ratio is ours / the peer's (at most ``threshold``)."""
    if kind == "throughput":
        return theirs / ours, theirs / ours >= threshold
    return ours / theirs, ours / theirs <= threshold


def metric(res: dict[str, Any], path: tuple[str, ...]) -> float:
    """The number at ``path`` (e.g. ``("read_month", "median_ms")``) of one system's result."""
    value: Any = res
    for p in path:
        value = value[p]
    return float(value)



def fill(template: str, **values: object) -> str:
    """bench/templates/<template>.md with its placeholders replaced (a missing value raises
    KeyError), without the file's final newline."""
    text = (TEMPLATES / f"{template}.md").read_text()
    return Template(text).substitute({k: str(v) for k, v in values.items()}).removesuffix("\n")


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    pg = bool(meta.get("postgres"))
    w = meta["workload"]
    head = fill("head", title_suffix=" on PostgreSQL" if pg else "",
                command=" ".join(["python bench/run.py", *meta["argv"]]), date=meta["date"],
                run_id=meta["run_id"], elapsed_s=f"{meta['elapsed_s']:.0f}",
                machine="\n".join(f"- {k}: {v}" for k, v in
                                  [*meta["machine"].items(), *meta["versions"].items()]),
                freq=FREQ, tz=TZ, results_name="results-postgres.json" if pg else "results.json",
                api_table="\n".join(api_table(meta["api"])),
                **{k: w[k] for k in ("n", "start", "end", "points_per_series", "points",
                                     "repeat", "month_reads")})
    lines = [head]
    for ds_name, ds in results["datasets"].items():
        lines += ["", *dataset_section(ds_name, ds)]
    targets = targets_tables(results, TARGETS_PG if pg else TARGETS)
    if targets:
        lines += ["", fill("targets", tables="\n".join(targets))]
    lines += ["", fill("analysis-postgres" if pg else "analysis-file")]
    if not pg:
        # The other benchmarks keep their own files (each regenerated by its own script); their
        # latest results are folded in here so RESULTS.md is the one page to read.
        lines += [line for section in folded_sections() for line in ("", section)]
    return "\n".join(lines) + "\n"


def dataset_section(ds_name: str, ds: dict[str, Any]) -> list[str]:
    """One data set's table (each system, and each of ours against each peer), bytes and facts."""
    systems = ds["systems"]
    labels = {name: r["label"] for name, r in systems.items()}
    peers = [p for p in PEERS if p in systems]
    others = [s for s in systems if s not in PEERS]
    ratio_cols = [(o, p) for o in others for p in peers]
    head = ["operation", *[labels[s] for s in systems], *[f"{o} / {p}" for o, p in ratio_cols]]
    table = ["| " + " | ".join(head) + " |", "|" + " --- |" + " ---: |" * (len(head) - 1)]
    for path, label, fmt in ROWS:
        cells = [fmt.format(metric(systems[s]["result"], path)) for s in systems]
        for o, p in ratio_cols:
            peer_v = metric(systems[p]["result"], path)
            cells.append(f"{metric(systems[o]['result'], path) / peer_v:.2f}x"
                         if peer_v else "-")
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    sizes = []
    for s, r in systems.items():
        b = r["result"]["bytes"]
        after = r["result"]["bytes_after_update"]
        extra = ", ".join(f"{k} {v / ds['points']:.2f} B/point" for k, v in b.items()
                          if k not in ("measured", "how"))
        sizes.append(f"- {labels[s]}: {b['how']} ({extra}); after the updates "
                     f"{after['measured'] / ds['points']:.2f} B/point.")
    lines = [fill("dataset", name=ds_name, description=ds["description"],
                  table="\n".join(table), bytes="\n".join(sizes))]
    facts = [(labels[s], r["result"].get("after_write") or {}) for s, r in systems.items()]
    facts = [(label, f) for label, f in facts if f]
    if facts:
        lines += ["", fill("after-write", facts="\n".join(f"- {label}: " + ", ".join(
            f"{k.removesuffix('_s')} {v:.2f} s" if k.endswith("_s") else f"{k} {v:g}"
            for k, v in f.items()) for label, f in facts))]
    return lines


def targets_tables(results: dict[str, Any], targets: list[Any]) -> list[str]:
    """Per curvestore system, its verdict on every target and data set (none without one)."""
    datasets = results["datasets"]
    curvestores = sorted({s for ds in datasets.values() for s in ds["systems"]
                          if s not in PEERS})
    ds_names = list(datasets)
    lines: list[str] = []
    for s in curvestores:
        label = next(ds["systems"][s]["label"] for ds in datasets.values()
                     if s in ds["systems"])
        lines += [f"### {label}", "", "| target | " + " | ".join(ds_names) + " |",
                  "| --- |" + " --- |" * len(ds_names)]
        for tlabel, only, path, peer, kind, threshold in targets:
            cells = []
            for d in ds_names:
                sysres = datasets[d]["systems"]
                if (only and d != only) or s not in sysres or peer not in sysres:
                    cells.append("-")
                    continue
                mine = metric(sysres[s]["result"], path)
                theirs = metric(sysres[peer]["result"], path)
                ratio, ok = verdict(kind, mine, theirs, threshold)
                cells.append(f"{ratio:.2f}x **{'pass' if ok else 'MISS'}**")
            lines.append(f"| {tlabel} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
