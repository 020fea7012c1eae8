"""torchrun awareness: the process group, this process's rank, the two collectives the launcher needs, and the
sharding of evaluation over ranks (`BatchShard`, `sync_module`).

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


def sharded() -> tuple[int, int]:
    """(rank, world) of the process group when there is one with several ranks, else (0, 1): every rank of a
    torchrun launch takes part in the work that calls this (evaluation: `BatchShard`)."""
    if not _group_ready():
        return 0, 1
    import torch.distributed as dist
    return dist.get_rank(), dist.get_world_size()


@dataclass(frozen=True)
class BatchShard:
    """The batches of range(n) in order (`batch_size` each, the last one short) that one rank computes: rank r
    takes batches r, r + world, ... Every batch is the one a single process forms, so each row comes out of the same
    forward, bit for bit, whatever the world size; `gather` puts every rank's rows back in index order."""
    n: int
    batch_size: int
    rank: int = 0
    world: int = 1

    @property
    def batches(self) -> list[list[int]]:
        starts = range(self.rank * self.batch_size, self.n, self.world * self.batch_size)
        return [list(range(s, min(s + self.batch_size, self.n))) for s in starts]

    def indices(self) -> list[int]:
        return [i for b in self.batches for i in b]

    def gather(self, rows: list):
        """The full [n, ...] tensor, on the CPU, on every rank, from this rank's per-batch row tensors (in the order
        of `batches`). One process: their concatenation, no collective."""
        import torch
        local = torch.cat(rows) if rows else None
        if self.world == 1:
            if local is None or len(local) != self.n:
                raise ValueError(f"expected rows for {self.n} items, got {0 if local is None else len(local)}")
            return local.cpu()
        import torch.distributed as dist
        # a rank with no batch (fewer batches than ranks) learns the rows' shape and dtype from the others
        metas = [None] * self.world
        dist.all_gather_object(metas, None if local is None else (tuple(local.shape[1:]), str(local.dtype)))
        shape, dtype = next(m for m in metas if m is not None)
        dtype = getattr(torch, dtype.removeprefix("torch."))
        wire = torch.uint8 if dtype == torch.bool else dtype  # gloo has no bool collectives
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
            else torch.device("cpu")
        shards = [BatchShard(self.n, self.batch_size, r, self.world) for r in range(self.world)]
        counts = [len(s.indices()) for s in shards]
        send = torch.zeros((max(counts), *shape), dtype=wire, device=device)
        if local is not None:
            send[:len(local)] = local.to(device=device, dtype=wire)
        recv = [torch.empty_like(send) for _ in range(self.world)]
        dist.all_gather(recv, send)
        out = torch.empty((self.n, *shape), dtype=wire)
        for s, c, got in zip(shards, counts, recv):
            out[torch.as_tensor(s.indices(), dtype=torch.long)] = got[:c].cpu()
        return out.to(dtype)


def batch_shard(n: int, batch_size: int) -> BatchShard:
    """This rank's `BatchShard` of n items (all batches outside torchrun)."""
    r, w = sharded()
    return BatchShard(n, batch_size, r, w)


def sync_module(module) -> None:
    """Rank 0's parameters and buffers on every rank (a no-op outside torchrun), so that ranks evaluating shards
    of one test set evaluate one model: after DDP training each rank's BatchNorm statistics are its own (DDP
    broadcasts rank 0's buffers *before* each forward, and the last forward updates each rank's copy)."""
    if sharded()[1] == 1:
        return
    import torch
    import torch.distributed as dist
    with torch.no_grad():
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)
