"""torch.distributed in one place: the same code runs under `torchrun` and as a single process.

Under torchrun (RANK / WORLD_SIZE set) the process group starts with NCCL when the ranks use
CUDA and gloo on the CPU; without it every helper here is a no-op for rank 0 of 1.
Tensors handed to a collective must live on `ctx.device` (NCCL moves CUDA tensors only).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from utils.device import pick_device


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> Dist:
    """Join the torchrun process group if there is one; pick NCCL for CUDA, gloo for CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist(rank=0, world_size=1, device=pick_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size(), device=chosen)


def shard(n_items: int, ctx: Dist) -> range:
    """Contiguous share of `n_items` for this rank (a rank may get none when n_items < world_size)."""
    per, extra = divmod(n_items, ctx.world_size)
    start = ctx.rank * per + min(ctx.rank, extra)
    return range(start, start + per + (ctx.rank < extra))


def shard_sequences(offsets: torch.Tensor, ctx: Dist) -> range:
    """This rank's contiguous run of sequences, holding about 1/world_size of the rows.

    offsets (S+1,) int64: sequence s is rows offsets[s]:offsets[s+1]. The cuts fall on sequence
    boundaries (a sequence is never split), placed by rows rather than by sequence count so ranks
    get similar work when lengths vary; a rank gets none when there are too few sequences. Every
    rank computes the same cuts from the same offsets, with no communication.
    """
    S = offsets.numel() - 1
    n_rows = int(offsets[-1])

    def cut(r: int) -> int:       # first sequence of rank r: the first to start at or after row r/W of all
        if r == ctx.world_size:
            return S                 # (trailing empty sequences included)
        target = torch.tensor(-(-n_rows * r // ctx.world_size), dtype=offsets.dtype)
        return int(torch.searchsorted(offsets.cpu(), target))
    return range(cut(ctx.rank), cut(ctx.rank + 1))


def all_reduce_sum(tensor: torch.Tensor, ctx: Dist) -> torch.Tensor:
    """In-place sum over ranks (identity in a single process)."""
    if ctx.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_rows(tensor: torch.Tensor, ctx: Dist, *, to: int | None = None) -> torch.Tensor | None:
    """Concatenate every rank's rows in rank order; ranks may hold different numbers of rows.

    With `to=r` only rank r receives them (the others get None): for corpus-sized results that one
    rank writes, so the others never hold them.
    """
    if not ctx.active:
        return tensor
    counts = torch.tensor([tensor.shape[0]], device=tensor.device)
    all_counts = [torch.zeros_like(counts) for _ in range(ctx.world_size)]
    dist.all_gather(all_counts, counts)
    most = int(max(c.item() for c in all_counts))
    padded = torch.zeros((most, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    receives = to is None or ctx.rank == to
    gathered = [torch.empty_like(padded) for _ in range(ctx.world_size)] if receives else None
    if to is None:
        dist.all_gather(gathered, padded)
    else:
        dist.gather(padded, gather_list=gathered, dst=to)
    return torch.cat([g[: int(c.item())] for g, c in zip(gathered, all_counts)]) if receives else None


def all_gather_objects(obj, ctx: Dist, *, to: int | None = None) -> list | None:
    """Every rank's picklable `obj`, in rank order (small things: names, ids); with `to=r` on rank r only."""
    if not ctx.active:
        return [obj]
    if to is None:
        out = [None] * ctx.world_size
        dist.all_gather_object(out, obj)
        return out
    out = [None] * ctx.world_size if ctx.rank == to else None
    dist.gather_object(obj, out, dst=to)
    return out


def broadcast(tensor: torch.Tensor, ctx: Dist, src: int = 0) -> torch.Tensor:
    if ctx.active:
        dist.broadcast(tensor, src=src)
    return tensor


def broadcast_object(obj, ctx: Dist, src: int = 0):
    """Rank `src`'s picklable `obj` on every rank: a decision one rank makes for all (a file exists, ...)."""
    if not ctx.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=ctx.device)
    return box[0]


def barrier(ctx: Dist) -> None:
    if ctx.active:
        dist.barrier()


def close_distributed(ctx: Dist) -> None:
    """Leave the process group after this rank's last collective (waits for the others first).

    A rank with nothing left to do exits rather than wait at a barrier while rank 0 works alone:
    NCCL's collectives time out after 10 minutes by default.
    """
    if ctx.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
