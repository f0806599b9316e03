"""The items a verb leaves out, counted by reason and named, and how a summary lists them without flooding a terminal.

Every verb that reads audio skips what it cannot use; its summary says how many items each reason cost and which
ones they were (a file name, or an id where an item has no file), the first few on screen and all of them in the
files the verb saves.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

SHOWN_NAMES = 10


class SkippedItems(Mapping[str, int]):
    """Skipped items: reads as `{reason: count}`, and `names[reason]` lists the items by name, in the order met.

    Counts and names are kept apart so that counts recorded without names (by an older build) still add up.
    """

    def __init__(
        self, counts: Mapping[str, int] | None = None, names: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self._counts: Counter = Counter(counts or {})
        self.names: dict[str, list[str]] = {reason: list(found) for reason, found in (names or {}).items()}

    def add(self, reason: str, name: str) -> None:
        """Counts one item skipped for `reason` and records its name."""
        self._counts[reason] += 1
        self.names.setdefault(reason, []).append(name)

    def update(self, other: Mapping[str, int], prefix: str = "") -> None:
        """Adds the counts (and names, when `other` has them) of `other`, each reason prefixed with `prefix`."""
        for reason, count in other.items():
            self._counts[prefix + reason] += count
        for reason, found in getattr(other, "names", {}).items():
            self.names.setdefault(prefix + reason, []).extend(found)

    def __getitem__(self, reason: str) -> int:
        return self._counts[reason]

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __repr__(self) -> str:
        return f"SkippedItems({dict(self._counts)}, names={self.names})"

    def lines(self, shown: int = SHOWN_NAMES, indent: str = "  ") -> list[str]:
        """`reason (count):` a reason, then the first `shown` names one a line and how many more there are."""
        lines = []
        for reason, count in self.items():
            lines.append(f"{indent}{reason} ({count}):")
            names = [f"{indent * 2}{name}" for name in self.names.get(reason, [])]
            lines += capped(names, count, shown, indent * 2)
        return lines


def capped(lines: Sequence[str], total: int | None = None, shown: int = SHOWN_NAMES, indent: str = "  ") -> list[str]:
    """The first `shown` of `lines`, then `… and K more.` for the rest of `total` items (default: one a line)."""
    total = len(lines) if total is None else total
    kept = list(lines[:shown])
    return kept + ([f"{indent}… and {total - len(kept)} more."] if total > len(kept) else [])


def audio_name(value: Any) -> str | None:
    """The file an audio value (a path, a datasets Audio dict, or an object with a `path`) was read from, or None."""
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    path = value.get("path") if isinstance(value, Mapping) else getattr(value, "path", None)
    return str(path) if path else None


__all__ = ["SHOWN_NAMES", "SkippedItems", "audio_name", "capped"]
