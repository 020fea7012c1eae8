"""torchrun awareness: the process group, this process's rank, and the two collectives the launcher needs.

Under `torchrun` every rank runs the same code. `init_distributed()` makes the process group from torchrun's
environment (a plain process is rank 0 of 1) and is called before any file lock is taken (relabel.launch.run_job),
so a rank that waits for a lock never leaves the others waiting for it inside `init_process_group`. `agree` and
`barrier` are no-ops outside torchrun.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

# How long a rank waits at a collective: rank 0 alone builds a shared artifact (the official import of 1.28M
# maps takes a while) while the others wait at a barrier; torch's default (10 min for NCCL) would kill them.
TIMEOUT_ENV = "RELABEL_DIST_TIMEOUT_MIN"


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed() -> DistInfo:
    """DDP set-up from torchrun's environment; a plain process is rank 0 of 1."""
    world = world_size()
    if world == 1:
        return DistInfo()
    import torch
    import torch.distributed as dist
    if not dist.is_initialized():
        minutes = float(os.environ.get(TIMEOUT_ENV, "720"))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                                timeout=datetime.timedelta(minutes=minutes))
    info = DistInfo(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
    return info


def _group_ready() -> bool:
    if world_size() == 1:
        return False
    import torch.distributed as dist
    return dist.is_initialized()


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    if _group_ready():
        import torch.distributed as dist
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if _group_ready():
        import torch.distributed as dist
        dist.barrier()


def agree(value):
    """Rank 0's `value` on every rank (a broadcast), so that all ranks take the same branch of a decision only
    rank 0 may make (is this artifact built?); `value` itself outside torchrun."""
    if not _group_ready():
        return value
    import torch.distributed as dist
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
