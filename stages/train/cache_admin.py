"""The train data cache between runs: what it holds (`rrhf cache ls`) and what to remove (`rrhf cache clean`)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, field_validator

from stages.contract.errors import UsageError
from stages.runtime.config import setting
from stages.runtime.console import log, output_console, print_json
from stages.train.dataset import PreparedInfo


class CleanConfig(BaseModel):
    """What `rrhf cache clean` removes."""

    everything: bool = setting(False, "Remove every prepared folder.", flags=("--all",))
    older_than: float | None = setting(None, "Remove the folders no run has used for more than DAYS days.",
                                       metavar="DAYS", ge=0)
    max_size: str | None = setting(None, "Then remove the least recently used folders until the cache holds at "
                                   "most SIZE (500M, 2G).", metavar="SIZE")
    dry_run: bool = setting(False, "Say what would be removed, and remove nothing.")

    @field_validator("max_size")
    @classmethod
    def _a_size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value)
        return value


@dataclass(frozen=True)
class Entry:
    """One prepared folder: its key, size, when a run last used it, and what it holds (None: incomplete)."""

    path: Path
    bytes: int
    last_used: float  # seconds since the epoch
    info: PreparedInfo | None

    @property
    def key(self) -> str:
        """The folder's name: the hash of what decided its data."""
        return self.path.name


def entries(root: Path) -> list[Entry]:
    """The prepared folders under ROOT/train-data, most recently used first (hidden staging folders left out:
    a preparation under way, or one a killed run left, which the next preparation on that host removes)."""
    folder = root / "train-data"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if path.name.startswith(".") or not path.is_dir():
            continue
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        found.append(Entry(path, size, path.stat().st_mtime, PreparedInfo.read(path)))
    return sorted(found, key=lambda e: e.last_used, reverse=True)


def to_remove(found: Sequence[Entry], now: float, everything: bool = False, older_than_days: float | None = None,
              max_bytes: int | None = None) -> list[Entry]:
    """Which entries a clean removes: all; those unused for more than `older_than_days`; and, to bring the cache
    under `max_bytes`, the least recently used of the rest. Incomplete folders always go."""
    if not (everything or older_than_days is not None or max_bytes is not None):
        raise UsageError("rrhf cache clean: say what to remove: --all, --older-than DAYS or --max-size SIZE")
    chosen = [e for e in found if everything or e.info is None
              or (older_than_days is not None and now - e.last_used > older_than_days * 86400)]
    if max_bytes is not None:
        kept = sorted((e for e in found if e not in chosen), key=lambda e: e.last_used, reverse=True)
        total = 0
        for entry in kept:
            total += entry.bytes
            if total > max_bytes:
                chosen.append(entry)
    return chosen


def remove(chosen: Sequence[Entry], dry_run: bool = False) -> int:
    """Remove the chosen folders (a run already training on one keeps its memory map); the bytes freed."""
    freed = 0
    for entry in chosen:
        log.info("cache: %s %s (%s)", "would remove" if dry_run else "removing", entry.path, size_text(entry.bytes))
        if not dry_run:
            shutil.rmtree(entry.path, ignore_errors=True)
        freed += entry.bytes
    return freed


def size_text(n: int) -> str:
    """Bytes for people: `512 B`, `1.5 KiB`, `3.0 GiB`.

    >>> size_text(512), size_text(1536), size_text(3 * 2**30)
    ('512 B', '1.5 KiB', '3.0 GiB')
    """
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"


def parse_size(text: str) -> int:
    """`500M`, `2G`, `1.5GiB`, `100000` (bytes) as a number of bytes; ValueError otherwise.

    >>> parse_size("2G"), parse_size("1.5GiB"), parse_size("100000"), parse_size("500MB")
    (2147483648, 1610612736, 100000, 524288000)
    """
    number = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(number[-1:], 1)
    number = number[:-1] if scale > 1 else number
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"'{text}' is not a size (e.g. 500M, 2G)") from None
    if value < 0:
        raise ValueError(f"'{text}' is not a size (e.g. 500M, 2G)")
    return int(value * scale)


def age_text(seconds: float) -> str:
    """How long ago, roughly: `5 min`, `3 h`, `2 days`."""
    if seconds < 3600:
        return f"{max(seconds, 0) / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def clean(root: Path, config: CleanConfig, now: float) -> list[Entry]:
    """Remove what `config` says from the train data cache under ROOT; the entries removed."""
    max_bytes = parse_size(config.max_size) if config.max_size is not None else None
    chosen = to_remove(entries(root), now, config.everything, config.older_than, max_bytes)
    freed = remove(chosen, config.dry_run)
    log.info("cache: %s %d prepared folder(s), %s, from %s", "would remove" if config.dry_run else "removed",
             len(chosen), size_text(freed), root / "train-data")
    return chosen


def listing(root: Path, now: float) -> list[dict[str, object]]:
    """The cache's prepared folders as rows for a table or JSON, most recently used first."""
    return [
        {"key": e.key, "path": str(e.path), "bytes": e.bytes, "size": size_text(e.bytes),
         "last_used": age_text(now - e.last_used) + " ago", "complete": e.info is not None,
         "records": e.info.records if e.info else None, "queries": e.info.counts.queries if e.info else None,
         "format": e.info.format if e.info else None}
        for e in entries(root)
    ]


def show_listing(root: Path, now: float, json_output: bool = False) -> None:
    """Print `listing(root, now)`: a table, or JSON on stdout."""
    rows = listing(root, now)
    if json_output:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("key", "records", "queries", "size", "last used", title=str(root / "train-data"),
                  title_justify="left")
    for row in rows:
        table.add_row(str(row["key"])[:16], str(row["records"] or "incomplete"), str(row["queries"] or ""),
                      str(row["size"]), str(row["last_used"]))
    output_console().print(table)
