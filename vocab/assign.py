"""Nearest centre of every frame: the assignment that k-means fitting and tokenisation share.

    labels, d2 = assign(frames, centroids)    # frames (N, D), centroids (k, D) or (R, k, D)

Assignment never holds an (N, k) matrix. Two backends compute it:
- `keops`: a KeOps LazyTensor min-argmin over the centres, run over the frames in chunks; the
  (n, k) distances are reduced inside the kernel. The default on CUDA.
- `torch`: chunked ||c||^2 - 2 x.c (one GEMM per chunk of rows) then the row minimum. The default
  on CPU: on the 2-core CPU at N = 1M, k = 1000, D = 17, float32, one assignment pass takes 0.26 s
  this way against 1.8 s with KeOps' CPU kernels. On CPU the chunks run on a small pool of Python
  threads (see cpu_threads) and the row minimum is numpy's SIMD argmin, about 3x faster than
  torch.argmin there.

The k-means loop (vocab/kmeans.py) calls `assign` and knows nothing of how distances are computed.
"""
from __future__ import annotations

import contextlib
import os
import socket
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import torch

UPDATE_ROWS = {"cpu": 1 << 16, "cuda": 1 << 21}  # rows per update / distance step: bounds temporaries
KEOPS_CACHE_ENV = "FACEVOCAB_KEOPS_CACHE"


# ------------------------------------------------------------------------------------ assignment
_warned: set[str] = set()   # fallback reasons already warned about in this process


def keops_gpu_problem() -> str | None:
    """Why KeOps cannot compile for the GPU here (None when it can)."""
    _keops_lazy_tensor()
    import pykeops.config
    if not pykeops.config.gpu_available:
        return "KeOps found no CUDA toolkit (nvrtc and the CUDA headers) to compile its GPU kernels"
    return None


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that will run: auto is keops on CUDA (torch, with one warning per process, where
    KeOps cannot compile for the GPU) and torch on the CPU. backend=keops on CUDA without a working
    toolkit is an error; on the CPU it runs KeOps' CPU kernels (compiled with the C++ compiler)."""
    return backend_report(backend, device)["ran"]


def backend_report(backend: str, device: torch.device) -> dict:
    """{"asked", "ran", "fallback"}: what was asked for, what runs, and why auto fell back (or None)."""
    if backend not in ("auto", "keops", "torch"):
        raise ValueError(f"backend={backend!r}: expected auto, keops or torch")
    if device.type != "cuda" or backend == "torch":
        return {"asked": backend, "ran": "torch" if backend == "auto" else backend, "fallback": None}
    problem = keops_gpu_problem()
    if problem is None:
        return {"asked": backend, "ran": "keops", "fallback": None}
    if backend == "keops":
        raise ValueError(f"backend=keops on CUDA tensors, but {problem}; install the CUDA toolkit or use backend=torch")
    if problem not in _warned:
        _warned.add(problem)
        warnings.warn(f"backend=auto: {problem}; using backend=torch", stacklevel=3)
    return {"asked": backend, "ran": "torch", "fallback": problem}


def keops_build_folder(root: str) -> str:
    """One KeOps build folder per host, CUDA version, GPU architecture and local rank: binaries
    compiled for one GPU or toolkit never load on another, and torchrun ranks of one node never
    compile into the same folder at once."""
    cuda = torch.version.cuda or "none"
    if torch.cuda.is_available():
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        major, minor = torch.cuda.get_device_capability(rank % torch.cuda.device_count())
        arch = f"sm{major}{minor}"
    else:
        arch = "cpu"
    key = f"{socket.gethostname()}-cuda{cuda}-{arch}-rank{os.environ.get('LOCAL_RANK', '0')}"
    return os.path.join(root, key)


def default_chunk(backend: str, device: torch.device, k: int) -> int:
    if backend == "keops":
        return 1 << 21
    if device.type == "cuda":
        return max(1024, (1 << 28) // k)  # a (chunk, k) float32 block of at most 1 GiB
    return max(128, (1 << 20) // k)  # CPU: a (chunk, k) block of 4 MiB stays in cache for the argmin


_LazyTensor = None


def _keops_lazy_tensor():
    """Import pykeops on first use, with its build cache outside the repository."""
    global _LazyTensor
    if _LazyTensor is None:
        import pykeops
        pykeops.set_build_folder(keops_build_folder(
            os.environ.get(KEOPS_CACHE_ENV, os.path.expanduser("~/.cache/keops-facevocab"))))
        pykeops.set_verbose(False)
        from pykeops.torch import LazyTensor
        _LazyTensor = LazyTensor
    return _LazyTensor


def _min_argmin_keops(xs: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """xs (n, D), c (R, k, D) -> squared distance (R, n) and index (R, n) of the nearest centre."""
    LazyTensor = _keops_lazy_tensor()
    R, k, D = c.shape
    if R == 1:
        x_i = LazyTensor(xs[:, None, :])                      # (n, 1, D)
        c_j = LazyTensor(c[0][None, :, :].contiguous())       # (1, k, D)
        d2, idx = ((x_i - c_j) ** 2).sum(-1).min_argmin(dim=1)
        return d2.view(1, -1), idx.view(1, -1)
    x_i = LazyTensor(xs[None, :, None, :])                    # (1, n, 1, D), broadcast over restarts
    c_j = LazyTensor(c[:, None, :, :].contiguous())           # (R, 1, k, D)
    d2, idx = ((x_i - c_j) ** 2).sum(-1).min_argmin(dim=2)
    return d2.view(R, -1), idx.view(R, -1)


def _min_argmin_torch(xs: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract via ||x||^2 + ||c||^2 - 2 x.c; c_sq (R, k) holds ||c||^2."""
    x_sq = (xs * xs).sum(1)                                   # (n,)
    d2s, idxs = [], []
    for r in range(c.shape[0]):
        part = torch.addmm(c_sq[r], xs, c[r].T, alpha=-2)     # (n, k): ||c||^2 - 2 x.c
        if part.device.type == "cpu":
            idx = torch.from_numpy(part.numpy().argmin(1))
            val = part.gather(1, idx[:, None]).squeeze(1)
        else:
            val, idx = part.min(1)
        d2s.append((val + x_sq).clamp_(min=0))
        idxs.append(idx)
    return torch.stack(d2s), torch.stack(idxs)


_pool: ThreadPoolExecutor | None = None
_depth = 0          # nesting of cpu_threads()
_threads = 1        # torch's thread count outside it


@contextlib.contextmanager
def cpu_threads() -> Iterator[ThreadPoolExecutor]:
    """Inside: torch runs single-threaded, and the assignment runs its chunks on a pool of
    Python threads (one per torch thread outside), each with its own GEMM and argmin.

    With torch's intra-op threads every small op is a parallel region that waits for all threads;
    on a loaded 2-core machine one region waits for a descheduled thread, and one assignment pass
    at N = 1M, k = 1000 took 3-16 s instead of 0.3 s. Independent chunks on independent threads
    (as scikit-learn's prange does) do not wait for each other; the O(N D) rest of an iteration
    is cheap on one thread. Re-entrant; changes torch's global thread count while inside.
    """
    global _pool, _depth, _threads
    if _depth == 0:
        if _pool is None or torch.get_num_threads() != _threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _threads = torch.get_num_threads()
            _pool = ThreadPoolExecutor(_threads, thread_name_prefix="kmeans")
        torch.set_num_threads(1)
    _depth += 1
    try:
        yield _pool
    finally:
        _depth -= 1
        if _depth == 0:
            torch.set_num_threads(_threads)


def assign(x: torch.Tensor, centroids: torch.Tensor, *, backend: str = "auto",
           chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of every row of x.

    x (N, D); centroids (k, D) -> labels (N,) int64, squared distances (N,);
    or centroids (R, k, D) -> (R, N) each (one batched pass for R restarts).
    """
    batched = centroids.ndim == 3
    c = (centroids if batched else centroids[None]).to(x.dtype).contiguous()  # (R, k, D)
    R, k, _ = c.shape
    N = x.shape[0]
    backend = resolve_backend(backend, x.device)
    chunk = chunk or default_chunk(backend, x.device, k * R)
    labels = torch.empty(R, N, dtype=torch.int64, device=x.device)
    d2 = torch.empty(R, N, dtype=x.dtype, device=x.device)
    c_sq = (c * c).sum(-1)                                    # (R, k)

    def run(lo: int, hi: int) -> None:
        for s in range(lo, hi, chunk):
            xs = x[s:min(s + chunk, hi)].contiguous()
            d, i = _min_argmin_keops(xs, c) if backend == "keops" else _min_argmin_torch(xs, c, c_sq)
            d2[:, s:s + xs.shape[0]] = d
            labels[:, s:s + xs.shape[0]] = i

    if backend == "torch":
        over_blocks(x, N, chunk, run)
    else:
        run(0, N)
    return (labels, d2) if batched else (labels[0], d2[0])


def over_blocks(x: torch.Tensor, N: int, multiple: int, fn: Callable[[int, int], object]) -> list:
    """fn(lo, hi) over [0, N) cut into blocks (multiples of `multiple` rows): on the CPU thread pool
    for CPU tensors, a few blocks per thread to even out the load; else in one call. Results in order."""
    if x.device.type != "cpu" or N <= multiple:
        return [fn(0, N)]
    with cpu_threads() as pool:
        step = -(-N // (4 * _threads * multiple)) * multiple
        return list(pool.map(lambda lo: fn(lo, min(lo + step, N)), range(0, N, step)))


def exact_sq_dist(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """||x_i - c_{labels_i}||^2 by direct differences (no cancellation), in chunks: (N,)."""
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    step = UPDATE_ROWS.get(x.device.type, 1 << 16)
    for s in range(0, x.shape[0], step):
        diff = x[s:s + step] - centroids[labels[s:s + step]]
        out[s:s + step] = (diff * diff).sum(1)
    return out
