"""The data-parallel finish: every rank writes its share of the artifact to its own file, and rank 0 streams the
shares into one artifact in the first input's order, never holding the records.

Rank 0 reads the other ranks' files where it can see them (one node, or a shared filesystem), which it checks
by their sizes. Where it cannot (nodes with local disks only), the shares travel to it in chunks of
CHUNK_BYTES over the process group. RRHF_SHARED_FS=0 forces the chunked path.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import orjson

from stages.contract.errors import UsageError, naming
from stages.contract.id_index import IdIndex, IdList
from stages.runtime.launch import Group
from stages.runtime.outputs import lock_holder

CHUNK_BYTES = 4 << 20


def share_path(output: Path, tag: str, kind: str = "share") -> Path:
    """Where one rank's share of `output` is kept (`kind` "received": rank 0's copy of a share it was sent)."""
    return output.with_name(f"{output.name}.{tag}.{kind}")


_RANK_FILE = re.compile(r"\.rank\d+-of-(\d+)\.(partial|share|received|lock)")


def other_world_sizes(names: Iterable[str], output_name: str, world_size: int) -> dict[str, int]:
    """Of the file names in an output's folder, the journals, shares and locks that a run of `output_name` under
    another number of processes left, each with that number (1: a plain journal, `OUTPUT.partial`).

    >>> names = ["o.partial", "o.rank0-of-2.partial", "o.rank1-of-2.share", "o.rank0-of-4.partial", "oo.partial"]
    >>> other_world_sizes(names, "o", 4)
    {'o.partial': 1, 'o.rank0-of-2.partial': 2, 'o.rank1-of-2.share': 2}
    >>> other_world_sizes(names, "o", 1)
    {'o.rank0-of-2.partial': 2, 'o.rank1-of-2.share': 2, 'o.rank0-of-4.partial': 4}
    """
    found = {}
    for name in names:
        if not name.startswith(output_name):
            continue
        rest = name[len(output_name):]
        match = _RANK_FILE.fullmatch(rest)
        size = int(match.group(1)) if match else (1 if rest == ".partial" else None)
        if size is not None and size != world_size:
            found[name] = size
    return found


def drop_other_world_sizes(output: Path, world_size: int) -> str | None:
    """Remove what an unfinished run of `output` under another number of processes left (its records are in
    journals this run cannot continue); the one line saying so, or None where there was nothing. UsageError
    where that run is still going (it holds its lock)."""
    folder = output.parent if str(output.parent) else Path(".")
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return None
    stale = other_world_sizes(names, output.name, world_size)
    if not stale:
        return None
    for name, size in stale.items():
        holder = lock_holder(folder / (name.rsplit(".", 1)[0] + ".lock"))
        if holder is not None:
            raise UsageError(f"{output}: another rrhf run under {size} process(es) (process {holder}) is writing it; "
                             "wait for it to end, or write elsewhere")
    records = 0
    for name in sorted(stale):
        path = folder / name
        if name.endswith(".partial"):
            records += _records_in(path)
        path.unlink(missing_ok=True)
    sizes = ", ".join(str(n) for n in sorted(set(stale.values())))
    return (f"{output}: an unfinished run under {sizes} process(es) left {records} finished record(s) in journals a "
            f"run under {world_size} cannot continue; removed them ({len(stale)} file(s)), those records are done "
            "again")


def _records_in(journal: Path) -> int:
    try:
        with journal.open("rb") as handle:
            return max(sum(1 for _ in handle) - 1, 0)  # the header is no record
    except OSError:
        return 0


def collect_shares(group: Group, output: Path, own: Path, chunk_bytes: int = CHUNK_BYTES) -> list[Path] | None:
    """On rank 0, every rank's share as a file it can read, in rank order; None on the other ranks. Collective.
    Memory holds at most one chunk of `chunk_bytes` per rank."""
    launch = group.launch
    sizes = group.gather((str(own), own.stat().st_size))
    visible = None
    if sizes is not None:
        visible = os.environ.get("RRHF_SHARED_FS") != "0" and all(_has_size(Path(p), n) for p, n in sizes)
    if group.everyone(visible)[0]:
        return [Path(p) for p, _ in sizes] if sizes is not None else None
    lead = launch.rank == 0
    tags = [f"rank{r}-of-{launch.world_size}" for r in range(launch.world_size)]
    received = [own] + [share_path(output, tag, "received") for tag in tags[1:]]
    with ExitStack() as stack:
        sinks = [stack.enter_context(p.open("wb")) for p in received[1:]] if lead else []
        source = stack.enter_context(own.open("rb"))
        while True:
            chunk = b"" if lead else source.read(chunk_bytes)
            chunks = group.gather(chunk)
            for sink, piece in zip(sinks, (chunks or [])[1:], strict=False):
                with naming(sink.name):
                    sink.write(piece)
            if not any(group.everyone(bool(chunk))):
                break
    return received if lead else None


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def in_input_order(shares: Sequence[Path], ids: IdList | Sequence[str]) -> Iterator[str]:
    """The lines of every share (each already in input order) merged into the input's order of `ids`."""
    index = IdIndex.positions(ids)

    def position(line: str) -> int:
        record_id = orjson.loads(line)["id"]
        for at in index.candidates(record_id):
            if ids[at] == record_id:
                return at
        raise RuntimeError(f"a share holds a record the input has not: {line[:80]}")

    with ExitStack() as stack:
        streams = [stack.enter_context(p.open(encoding="utf-8")) for p in shares]
        yield from heapq.merge(*streams, key=position)
