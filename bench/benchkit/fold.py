"""RESULTS.md is the one page to read: the other benchmarks' RESULTS-<name>.md pages are folded
into it as sections, refreshed whenever one of them is written."""

from __future__ import annotations

from .env import BENCH

#: The benchmarks whose RESULTS-<name>.md is folded into RESULTS.md, with their headings.
FOLDED = {
    "codecs": "Codecs and byte-shuffle (`python bench/codecs.py`)",
    "postgres": "PostgreSQL backend vs holcstore on PostgreSQL (`python bench/run.py --postgres`)",
    "sync": "Replication (`python bench/sync.py`)",
    "s3": "S3 backend and archival (`python bench/s3.py`)",
    "django": "Django adapter vs holcstore on PostgreSQL (`python bench/django_adapter.py`)",
    "fleet": "Fleet: daily ingest of 10,000 meters (`python bench/fleet.py`)",
    "distributed": "Dask workers, Arrow into DuckDB and Polars (`python bench/distributed.py`)",
}


def folded_section(title: str, text: str) -> str:
    """A RESULTS-<name>.md page as a section of RESULTS.md (its headings one level down)."""
    body = text.split("\n", 1)[1]
    body = body.replace("\n#### ", "\n##### ").replace("\n### ", "\n#### ")
    return f"## {title}\n\n" + body.replace("\n## ", "\n### ").strip() + "\n"


def folded_sections() -> list[str]:
    """Every folded page that exists, as sections of RESULTS.md (trailing newlines dropped)."""
    sections = []
    for name, title in FOLDED.items():
        page = BENCH / f"RESULTS-{name}.md"
        if page.exists():
            sections.append(folded_section(title, page.read_text()).rstrip("\n"))
    return sections


def fold_into_results_md(name: str) -> None:
    """Refresh one folded benchmark's section of bench/RESULTS.md from its RESULTS-<name>.md,
    leaving the rest of the file as its last run wrote it."""
    main, page, title = BENCH / "RESULTS.md", BENCH / f"RESULTS-{name}.md", FOLDED[name]
    if not main.exists() or not page.exists():
        return
    section = folded_section(title, page.read_text())
    text = main.read_text()
    start = text.find(f"\n## {title}\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        after = text.find("\n## ", start + 1)
        text = text[:start + 1] + section + ("" if after < 0 else "\n" + text[after + 1:])
    main.write_text(text)
    print(f"refreshed its section of {main}")
