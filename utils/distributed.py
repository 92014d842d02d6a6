"""torch.distributed in one place: the same code runs under `torchrun` and as a single process.

Under torchrun (RANK / WORLD_SIZE set) the process group starts with NCCL when the ranks use
CUDA and gloo on the CPU; without it every helper here is a no-op for rank 0 of 1.
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


def all_reduce_sum(tensor: torch.Tensor, ctx: Dist) -> torch.Tensor:
    """In-place sum over ranks (identity in a single process)."""
    if ctx.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_rows(tensor: torch.Tensor, ctx: Dist) -> torch.Tensor:
    """Concatenate every rank's rows in rank order; ranks may hold different numbers of rows."""
    if not ctx.active:
        return tensor
    counts = torch.tensor([tensor.shape[0]], device=tensor.device)
    all_counts = [torch.zeros_like(counts) for _ in range(ctx.world_size)]
    dist.all_gather(all_counts, counts)
    most = int(max(c.item() for c in all_counts))
    padded = torch.zeros((most, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(c.item())] for g, c in zip(gathered, all_counts)])


def broadcast(tensor: torch.Tensor, ctx: Dist, src: int = 0) -> torch.Tensor:
    if ctx.active:
        dist.broadcast(tensor, src=src)
    return tensor


def barrier(ctx: Dist) -> None:
    if ctx.active:
        dist.barrier()
