"""Numbers as people read them, for the command line and the demo."""

from __future__ import annotations

__all__ = ["human_bytes", "plural"]


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def plural(n: int, word: str) -> str:
    """``plural(1, 'chunk')`` -> ``'1 chunk'``; ``plural(2_000, 'point')`` -> ``'2,000 points'``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"
