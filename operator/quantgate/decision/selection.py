"""Which variant to ship: the smallest promotable one by size, ties broken by the lower average drop.

Sizes are free-form in reports ("8GB", "8 GB", "4.6Gi", "16.1 GiB", "7340032000"): decimal
(kB, MB, GB, TB) and binary (Ki/KiB ... Ti/TiB) units, a bare number is bytes. A promotable
variant without a readable size cannot be ranked and is named in the reason instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def size_bytes(text: str | None) -> float | None:
    """Bytes of a size such as 8GB or 4.6Gi; None when absent or unreadable."""
    if not text:
        return None
    match = _SIZE.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class Selection:
    name: str | None
    reason: str

    def dump(self) -> dict:
        return {"name": self.name, "reason": self.reason}


def select(rows) -> Selection:
    """rows: objects with name, size, promotable, average_drop (the candidates, not the reference)."""
    promotable = [r for r in rows if r.promotable]
    if not promotable:
        return Selection(None, "no variant is promotable")
    unsized = [r.name for r in promotable if size_bytes(r.size) is None]
    ranked = sorted((r for r in promotable if size_bytes(r.size) is not None),
                    key=lambda r: (size_bytes(r.size), r.average_drop if r.average_drop is not None else float("inf")))
    note = f"; promotable without a readable size, not ranked: {', '.join(unsized)}" if unsized else ""
    if not ranked:
        return Selection(None, f"no promotable variant has a readable size{note}")
    best = ranked[0]
    return Selection(best.name, f"smallest promotable variant ({best.size}, average drop "
                                f"{best.average_drop:.2f}%){note}")
