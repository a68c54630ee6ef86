"""Data-parallel runs of the journaled stages under a launcher (torchrun, accelerate): which share of the
records is this process's, and how rank 0 gathers the shares into one artifact.

Torch is imported only when a run is launched with more than one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Launch:
    """This process's place in a launch: global rank, number of processes, rank on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def parallel(self) -> bool:
        """Whether several processes share the work."""
        return self.world_size > 1

    @property
    def tag(self) -> str:
        """The name of this process's share in file names: `rank0-of-2`."""
        return f"rank{self.rank}-of-{self.world_size}"


PEER_ENDED = ("Connection closed by peer", "Connection reset by peer", "NCCL communicator was aborted")
"""What a collective raises (gloo, NCCL) when another process of the launch is gone."""


def peer_ended(err: BaseException, launch: Launch) -> str | None:
    """The line for a process whose collective failed because another process of `launch` ended (that one
    says why), or None for any other error.

    >>> peer_ended(RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:5"), Launch(0, 2, 0))[:48]
    'rank 0 of 2: another process of the launch ended'
    >>> peer_ended(RuntimeError("Connection closed by peer"), Launch()) is None  # one process: no peers
    True
    """
    if not launch.parallel or not isinstance(err, RuntimeError) or not any(s in str(err) for s in PEER_ENDED):
        return None
    return (f"rank {launch.rank} of {launch.world_size}: another process of the launch ended (its own error says "
            "why), so this one stopped; what it finished is kept")


def current_launch() -> Launch:
    """The launch described by the environment torchrun (and accelerate, DeepSpeed) set; one process if none."""
    try:
        env = os.environ
        return Launch(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")))
    except ValueError:
        return Launch()


class Group:
    """The processes of a launch, joined over gloo (CPU collectives; every stage exchanges Python objects only)."""

    def __init__(self, launch: Launch) -> None:
        import torch.distributed as dist

        self.launch, self.dist = launch, dist
        if not dist.is_initialized():
            dist.init_process_group("gloo")

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's `value`, in rank order, on rank 0; None on the others."""
        out: list[Any] | None = [None] * self.launch.world_size if self.launch.rank == 0 else None
        self.dist.gather_object(value, out, dst=0)
        return out

    def everyone(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        out: list[Any] = [None] * self.launch.world_size
        self.dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        self.dist.barrier()


def leave_together(launch: Launch) -> None:
    """Wait for every process of the launch before this one exits. A process that exits while another still uses
    the group (rank 0 saving the model) can abort in its C++ teardown (gloo: "terminate called without an active
    exception"), failing a run that finished. The group is not destroyed here: on gloo, destroying it from Python
    can deadlock (the destructor joins a gloo thread that waits for the GIL the caller holds)."""
    if not launch.parallel:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def exit_past_teardown(status: int) -> None:
    """End a process whose gloo group is up with `status`, its lock files released and its streams flushed, without
    the interpreter's teardown; return where no group is up. A rank of a run that finished could still abort in
    that teardown (gloo's threads hold tensors whose release needs the interpreter being torn down: "terminate
    called without an active exception"), and destroying the group first can deadlock (see `leave_together`)."""
    import sys

    dist = sys.modules.get("torch.distributed")  # never imports torch: a run that did not launch one has no group
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    import logging

    from stages.runtime.outputs import unlock_all

    unlock_all()  # the exit handler a normal exit would run: this process's lock files
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass  # a closed or gone stream: the status still says how the run ended
    os._exit(status)
