"""Run a function on 2 CPU ranks (gloo) as torchrun would, and collect what each rank returns."""
from __future__ import annotations

import os
import socket

import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, fn, args, results):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        results[rank] = fn(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_ranks(fn, *args, world_size: int = 2) -> list:
    """`fn` must be importable (module level); it calls init_distributed itself."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        mp.start_processes(_worker, args=(world_size, _free_port(), fn, args, results),
                           nprocs=world_size, start_method="spawn", join=True)
        return [results[r] for r in range(world_size)]
