"""The data-parallel finish: every rank writes its share of the artifact to its own file, and rank 0 streams the
shares into one artifact in the first input's order, never holding the records.

Rank 0 reads the other ranks' files where it can see them (one node, or a shared filesystem), which it checks
by their sizes. Where it cannot (nodes with local disks only), the shares travel to it in chunks of
CHUNK_BYTES over the process group. RRHF_SHARED_FS=0 forces the chunked path.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import orjson

from stages.contract.errors import naming
from stages.contract.id_index import IdIndex, IdList
from stages.runtime.launch import Group

CHUNK_BYTES = 4 << 20


def share_path(output: Path, tag: str, kind: str = "share") -> Path:
    """Where one rank's share of `output` is kept (`kind` "received": rank 0's copy of a share it was sent)."""
    return output.with_name(f"{output.name}.{tag}.{kind}")


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
