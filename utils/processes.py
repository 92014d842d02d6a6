"""Worker processes that never outlive their parent.

`worker_init` runs first in every pool worker (ingest's, the training sweep's):
- Linux: `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so the kernel kills the worker the moment its parent
  dies, however it dies (`kill -9` included) and with no thread polling. Chosen over a watchdog
  thread because it also covers a worker busy in C code (a BLAS call, a torch op) and costs nothing.
  The parent may have died before the call: the worker then checks its parent pid and exits.
- elsewhere: a daemon thread that ends the worker within a second of its parent's pid changing.
- SIGINT is ignored: Ctrl-C reaches every process of the terminal's group, and the parent alone
  decides (it stops the pool and prints one line) instead of every worker printing a traceback.
Every write is atomic (utils.io), so a worker killed mid-job leaves no partial artifact.

`stop_pool` ends a ProcessPoolExecutor at once on an interrupt (its own shutdown would wait for the
running jobs, which can take minutes).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

PR_SET_PDEATHSIG = 1


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def worker_init(parent: int) -> None:
    """Pool initializer: `parent` is os.getpid() of the process creating the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:       # the parent died before prctl took effect
            os._exit(1)
    else:
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers and drop its queued jobs, without waiting for the running ones."""
    processes = list(getattr(pool, "_processes", {}).values())   # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    for process in processes:
        process.join(timeout=5)


def ordered_map(fn, jobs: list, workers: int, *, progress=None, spawn: bool = False):
    """fn(job) for every job, yielded in order, in `workers` processes (inline when workers <= 1).

    Workers die with this process and ignore Ctrl-C (`worker_init`); on an interrupt or an error
    the pool is stopped at once. `spawn` starts clean interpreters, for jobs that run torch (a fork
    of a process whose thread pools have started can hang). `progress` gets .update(1) per job."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            result = fn(job)
            if progress is not None:
                progress.update(1)
            yield result
        return
    ctx = get_context("spawn" if spawn else "fork")
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=worker_init,
                               initargs=(os.getpid(),))
    try:
        for result in pool.map(fn, jobs):
            if progress is not None:
                progress.update(1)
            yield result
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown()
