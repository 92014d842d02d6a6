"""Run a function on 2 CPU ranks (gloo) as torchrun would, and collect what each rank returns."""
from __future__ import annotations

import os
import socket
import time

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


def run_ranks(fn, *args, world_size: int = 2, timeout: float = 120.0) -> list:
    """`fn` must be importable (module level); it calls init_distributed itself.

    A rank that raises fails the call (the others are stopped); ranks still running after `timeout`
    seconds (a collective some rank never joined) are stopped and TimeoutError is raised.
    """
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        procs = mp.start_processes(_worker, args=(world_size, _free_port(), fn, args, results),
                                   nprocs=world_size, start_method="spawn", join=False)
        deadline = time.monotonic() + timeout
        while not procs.join(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                for p in procs.processes:
                    p.kill()
                raise TimeoutError(f"{fn.__name__}: ranks still running after {timeout} s (a collective hangs?)")
        return [results[r] for r in range(world_size)]
