"""k-means for the frame vocabulary: greedy k-means++ on a seeded sample, then Lloyd iterations.

    result = KMeans(k=1000, seed=0).fit(frames)      # frames (N, D) float32, CPU or CUDA
    labels, d2 = assign(frames, result.centroids)    # nearest centre and squared distance

Assignment (the nearest centre, KeOps or torch backend) lives in vocab/assign.py; this loop only
calls it. A whole Lloyd iteration at N = 1M, k = 1000 on the 2-core CPU: 0.28 s, scikit-learn's
0.54 s (bench/bench_kmeans.py, BENCHMARKS.md).

The centroid update sums frames per cluster with `index_add_` into a float64 (R*k, D) buffer (the
index is the (N,) label vector, never an (N, D) index tensor). On CPU the same seed gives the same
centres bit for bit; on CUDA the order of the atomic additions varies, which moves the float64 sums
in their last bits only, and the cast back to float32 removes that in all but rare cases.

Several restarts (`n_init`) advance in lock step: one batched reduction assigns the frames to the
centres of every restart still running (KeOps batch dimension), and the restart with the lowest
final inertia is kept.

Under torch.distributed (`ctx` from utils.distributed; torchrun) each rank holds a consecutive run
of the frames, in rank order. Assignment stays local; the float64 centroid sums, the counts, the
inertia and the reassigned count are all-reduced, so every rank takes the same steps and stops at
the same iteration, and the centres equal a single process's up to the order of the float64
additions. Empty clusters are re-seeded from the farthest frames of all ranks (each rank offers
its own; every rank makes the same choice from the same gathered rows). k-means++ runs on the same
seeded sample of global rows as in one process, gathered from the ranks that hold them; rank 0's
centres are broadcast so all ranks start alike. A rank with no frames takes part with nothing.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, fields
from typing import Callable

import torch

from utils.config import at_least, between, one_of
from utils.distributed import Dist, all_gather_rows, all_reduce_sum, broadcast
from vocab.assign import UPDATE_ROWS, assign, cpu_threads, exact_sq_dist, over_blocks


@dataclass
class KMeansConfig:
    """The k-means options and their defaults (cluster.py's schema extends this one)."""
    n_init: int = 1               # k-means++ restarts; the lowest final inertia is kept (kmcuda: 1)
    max_iter: int = 300
    tol: float = 1e-5             # stop when inertia falls by less than this fraction (0: off)
    reassign_tol: float = 1e-4    # stop when at most this fraction of frames changes cluster (kmcuda: 0.01);
                                  # METHOD.md's 1e-4 / 1e-3 stopped up to 0.73 % above scikit-learn's inertia
    seed: int = 0
    init_sample: int = 200_000    # k-means++ runs on this many frames drawn at random (all if fewer)
    backend: str = "auto"         # auto (keops on CUDA, torch on CPU) | keops | torch
    chunk: int = 0                # frames per assignment chunk; 0 = backend default
    batch_restarts: bool = True   # run the n_init restarts in one batched reduction


# the values a user can get wrong, checked (utils.config.check_ranges) before a run directory is written
RANGES = {"n_init": at_least(1), "max_iter": at_least(1), "tol": at_least(0), "reassign_tol": between(0, 1),
          "init_sample": at_least(1), "backend": one_of("auto", "keops", "torch"), "chunk": at_least(0)}

# options that change the speed of a fit, never its result
SPEED_ONLY = ("backend", "chunk", "batch_restarts")
RESULT_PARAMS = tuple(f.name for f in fields(KMeansConfig) if f.name not in SPEED_ONLY)


@dataclass
class KMeansResult:
    centroids: torch.Tensor   # (k, D), dtype of the data
    labels: torch.Tensor      # (N,) int64, nearest final centre of each frame
    counts: torch.Tensor      # (k,) int64, frames per final centre
    inertia: float            # sum of squared distances to the nearest centre
    mean_dist: float          # mean Euclidean distance to the nearest centre (the paper's elbow measure)
    n_iter: int               # Lloyd iterations (assignment + update) run by the kept restart
    stop: str                 # converged | reassigned | inertia | max_iter
    restart: int              # which restart was kept
    restart_inertias: list[float]
    history: list[dict] = field(default_factory=list)  # per iteration: inertia, reassigned fraction
    seconds: float = 0.0


# ------------------------------------------------------------------------------------ update
def centroid_sums(x: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """labels (R, N) -> per-cluster sums (R, k, D) float64 and counts (R, k) int64."""
    R, N = labels.shape
    D = x.shape[1]
    shift = (torch.arange(R, device=x.device) * k)[:, None]   # restart r owns rows r*k .. r*k+k-1
    step = UPDATE_ROWS.get(x.device.type, 1 << 16)

    def block_sums(lo: int, hi: int) -> torch.Tensor:         # (R*k, D) float64 sums of rows lo..hi
        sums = torch.zeros(R * k, D, dtype=torch.float64, device=x.device)
        for s in range(lo, hi, step):
            e = min(s + step, hi)
            xs = x[s:e].to(torch.float64)                     # (n, D)
            sums.index_add_(0, (labels[:, s:e] + shift).reshape(-1), xs if R == 1 else xs.repeat(R, 1))
        return sums

    sums = torch.stack(over_blocks(x, N, 4096, block_sums)).sum(0)  # per-block partial sums, added in order
    counts = torch.bincount((labels + shift).reshape(-1), minlength=R * k)
    return sums.view(R, k, D), counts.view(R, k)


def relocate_empty(x: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor,
                   labels: torch.Tensor, d2: torch.Tensor, ctx: Dist | None = None) -> list[int]:
    """Re-seed empty clusters with the frames farthest from their centres (as scikit-learn does).

    Each such frame becomes the sole member of an empty cluster and is taken out of its old
    cluster's sum; modifies sums (R, k, D) and counts (R, k) (already summed over ranks) in place;
    returns, per restart, how many clusters were re-seeded. With several ranks each offers its own
    farthest frames: the farthest of all are among them.
    """
    moved = [0] * counts.shape[0]
    for r in torch.nonzero((counts == 0).any(1)).flatten().tolist():
        empty = torch.nonzero(counts[r] == 0).flatten()       # (E,)
        E = len(empty)
        mine = torch.topk(d2[r], min(E, d2.shape[1])).indices  # (<= E,) this rank's farthest frames
        offer = torch.cat([d2[r, mine, None].double(), labels[r, mine, None].double(), x[mine].double()], 1)
        if ctx is not None:
            offer = all_gather_rows(offer, ctx)               # (candidates, 2 + D), the same on every rank
        far = offer[torch.topk(offer[:, 0], E).indices]        # (E, 2 + D): distance, old cluster, frame
        old, xf = far[:, 1].long(), far[:, 2:]
        sums[r].index_add_(0, old, -xf)
        counts[r].index_add_(0, old, -torch.ones_like(old))
        sums[r, empty] = xf
        counts[r, empty] = 1
        moved[r] = E
    return moved


# ------------------------------------------------------------------------------------ init
def kmeans_plusplus(x: torch.Tensor, k: int, *, n_restarts: int = 1, generator: torch.Generator,
                    n_local_trials: int | None = None) -> torch.Tensor:
    """Greedy k-means++ as scikit-learn's `_kmeans_plusplus`, for several restarts at once.

    x (S, D) -> centres (R, k, D). Each new centre: draw `2 + int(log k)` candidates with probability
    proportional to the squared distance to the nearest chosen centre, keep the candidate that most
    lowers the potential. Random numbers come from the CPU `generator`, so CPU and CUDA runs with the
    same seed draw the same values. Nothing here waits on the device inside the loop.
    """
    S, D = x.shape
    R = n_restarts
    T = n_local_trials or 2 + int(math.log(k))
    dev = x.device
    x_sq = (x * x).sum(1)                                            # (S,)
    rows = torch.arange(R, device=dev)

    def sq_dist(cand):                                               # (R, T, D) -> (R, T, S)
        return (x_sq + (cand * cand).sum(-1, keepdim=True) - 2 * cand @ x.T).clamp_(min=0)

    first = torch.randint(S, (R,), generator=generator).to(dev)
    draws = torch.rand(R, max(k - 1, 0), T, generator=generator, dtype=torch.float64).to(dev)
    centres = torch.empty(R, k, D, dtype=x.dtype, device=dev)
    centres[:, 0] = x[first]
    closest = sq_dist(x[first][:, None])[:, 0]                       # (R, S)
    cum = torch.cumsum(closest, 1, dtype=torch.float64)              # (R, S)
    for c in range(1, k):
        targets = draws[:, c - 1] * cum[:, -1:]                      # (R, T)
        cand = torch.searchsorted(cum, targets).clamp_(max=S - 1)    # (R, T) candidate rows of x
        dist = torch.minimum(sq_dist(x[cand]), closest[:, None])     # (R, T, S)
        potential = dist.sum(-1, dtype=torch.float64)                # (R, T)
        best = potential.argmin(1)                                   # (R,)
        closest = dist[rows, best]
        cum = torch.cumsum(closest, 1, dtype=torch.float64)
        centres[:, c] = x[cand[rows, best]]
    return centres


# ------------------------------------------------------------------------------------ Lloyd
def lloyd(x: torch.Tensor, init: torch.Tensor, *, max_iter: int = 300, tol: float = 1e-5,
          reassign_tol: float = 1e-4, backend: str = "auto", chunk: int = 0,
          callback: Callable[[int, int, float, float], None] | None = None,
          ctx: Dist | None = None) -> list[KMeansResult]:
    """Lloyd iterations from init (R, k, D), all restarts in lock step; one result per restart.

    An iteration assigns every frame to the current centres, then moves each centre to the mean
    of its frames (empty clusters re-seeded first). A restart stops after the iteration in which
    no frame changed cluster ("converged", as scikit-learn's strict convergence), the fraction of
    frames that changed is <= reassign_tol ("reassigned"; the paper's kmcuda used 0.01), or the
    inertia fell by less than tol relative to the previous iteration ("inertia"; tol=0 turns this
    off). Frames are then assigned once more to the final centres.
    Defaults: METHOD.md's tol = 1e-4 with reassign_tol = 1e-3 stopped up to 0.73 % above
    scikit-learn's converged inertia from the same start (Lloyd's long tail of small moves);
    1e-5 and 1e-4 stayed within 0.42 % on the same cases, at 1.2-2x the iterations.
    callback(iteration, restart, inertia, reassigned_fraction) is called every iteration.
    With `ctx`, x is this rank's frames and a result's labels are theirs; all else is global.
    """
    R, k, D = init.shape
    ctx = ctx or Dist(rank=0, world_size=1, device=x.device)
    N = int(all_reduce_sum(torch.tensor([x.shape[0]], device=x.device), ctx))   # frames of all ranks
    centres = init.to(x.dtype).clone()
    history: list[list[dict]] = [[] for _ in range(R)]
    n_iter, stop = [0] * R, ["max_iter"] * R
    final: dict[int, torch.Tensor] = {}                    # restart -> labels valid for its final centres
    prev_inertia = [math.inf] * R
    active = list(range(R))
    labels_old = None                                      # (A, N) labels of the active restarts
    for it in range(1, max_iter + 1):
        rows = torch.tensor(active, device=x.device)
        labels, d2 = assign(x, centres[rows], backend=backend, chunk=chunk)  # (A, N) each
        sums, counts = (all_reduce_sum(t, ctx) for t in centroid_sums(x, labels, k))  # (A, k, D) f64, (A, k)
        moved = relocate_empty(x, sums, counts, labels, d2, ctx)
        new = torch.where(counts[..., None] > 0, sums / counts.clamp(min=1)[..., None], centres[rows].double())
        centres[rows] = new.to(x.dtype)
        # inertia of the centres this iteration started from, and frames that changed cluster: (2, A)
        changed = (labels != labels_old).sum(1) if labels_old is not None else labels.new_zeros(len(labels))
        inertia, changed = all_reduce_sum(torch.stack([d2.sum(1, dtype=torch.float64), changed.double()]), ctx).tolist()
        changed = [int(c) for c in changed] if labels_old is not None else [N] * len(active)
        keep = []
        for j, r in enumerate(active):
            frac = changed[j] / N
            rel = (prev_inertia[r] - inertia[j]) / prev_inertia[r] if math.isfinite(prev_inertia[r]) else math.inf
            prev_inertia[r] = inertia[j]
            n_iter[r] = it
            history[r].append({"iter": it, "inertia": inertia[j], "reassigned": frac, "relocated": moved[j]})
            if callback is not None:
                callback(it, r, inertia[j], frac)
            if changed[j] == 0 and moved[j] == 0:
                stop[r] = "converged"
                final[r] = labels[j]                       # same partition -> same centres
            elif frac <= reassign_tol and labels_old is not None:
                stop[r] = "reassigned"
            elif tol > 0 and rel < tol:
                stop[r] = "inertia"
            else:
                keep.append(j)
        labels_old = labels if len(keep) == len(active) else labels[keep]
        active = [active[j] for j in keep]
        if not active:
            break
    pending = [r for r in range(R) if r not in final]
    if pending:
        labels, _ = assign(x, centres[torch.tensor(pending, device=x.device)], backend=backend, chunk=chunk)
        final.update(zip(pending, labels))
    results = []
    for r in range(R):
        d2 = exact_sq_dist(x, centres[r], final[r]).double()
        inertia, dist = all_reduce_sum(torch.stack([d2.sum(), d2.sqrt().sum()]), ctx).tolist()
        results.append(KMeansResult(
            centroids=centres[r], labels=final[r], counts=all_reduce_sum(torch.bincount(final[r], minlength=k), ctx),
            inertia=inertia, mean_dist=dist / N, n_iter=n_iter[r], stop=stop[r],
            restart=r, restart_inertias=[], history=history[r]))
    return results


def check_frames(x: torch.Tensor, k: int, where: str = "frames", n_frames: int | None = None) -> None:
    """User mistakes get a message naming what is wrong, not an error from deep inside.
    n_frames: the frames of all ranks, when x is one rank's share."""
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"{where}: expected a 2-D float tensor (N, D), got {tuple(x.shape)} {x.dtype}")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        row, col = (int(v) for v in torch.nonzero(bad)[0])
        raise ValueError(f"{where}: {int(bad.any(1).sum())} rows hold NaN or inf values "
                         f"(first: row {row}, column {col})")
    n = x.shape[0] if n_frames is None else n_frames
    if not 1 <= k <= n:
        raise ValueError(f"{where}: k={k} clusters asked for, but there are {n} frames (need 1 <= k <= N)")


class KMeans:
    """Seeded k-means: k-means++ on a sample of `init_sample` frames, then Lloyd on all frames.

    The sample is drawn uniformly without replacement (torch.randperm with the seeded CPU generator);
    when N <= init_sample every frame takes part, which is scikit-learn's algorithm exactly (up to
    the random numbers drawn).
    """

    def __init__(self, *, k: int, n_local_trials: int | None = None, **options):
        """`options`: the fields of KMeansConfig (its defaults are the one source of them)."""
        cfg = KMeansConfig(**options)
        if cfg.n_init < 1 or cfg.max_iter < 1:
            raise ValueError(f"n_init={cfg.n_init} and max_iter={cfg.max_iter} must be >= 1")
        self.k, self.n_local_trials = k, n_local_trials
        self.n_init, self.max_iter, self.tol, self.reassign_tol = cfg.n_init, cfg.max_iter, cfg.tol, cfg.reassign_tol
        self.seed, self.init_sample = cfg.seed, cfg.init_sample
        self.backend, self.chunk, self.batch_restarts = cfg.backend, cfg.chunk, cfg.batch_restarts

    def init_centres(self, x: torch.Tensor, ctx: Dist | None = None) -> torch.Tensor:
        """(n_init, k, D) k-means++ centres, a function of the seed and the data only (not of the ranks).

        With `ctx`, x is this rank's run of rows: the sample is the same global rows as in one
        process, each sent by the rank that holds it and put back in the sample's order."""
        ctx = ctx or Dist(rank=0, world_size=1, device=x.device)
        g = torch.Generator().manual_seed(self.seed)
        n_rows = all_gather_rows(torch.tensor([x.shape[0]], device=x.device), ctx).tolist()  # (ranks,)
        N, first = sum(n_rows), sum(n_rows[:ctx.rank])
        if N > self.init_sample:
            rows = torch.randperm(N, generator=g)[:self.init_sample].to(x.device)  # (init_sample,) global rows
            held = (rows >= first) & (rows < first + x.shape[0])
            sample = torch.empty(len(rows), x.shape[1], dtype=x.dtype, device=x.device)
            sample[all_gather_rows(torch.nonzero(held).flatten(), ctx)] = all_gather_rows(x[rows[held] - first], ctx)
        else:
            sample = all_gather_rows(x, ctx)                                     # every frame, in order
        if sample.shape[0] < self.k:
            raise ValueError(f"init_sample={self.init_sample} frames cannot seed k={self.k} centres")
        centres = kmeans_plusplus(sample, self.k, n_restarts=self.n_init, generator=g,
                                  n_local_trials=self.n_local_trials)
        return broadcast(centres, ctx)      # every rank computed the same; rank 0's make sure of it

    def fit(self, x: torch.Tensor, *, init: torch.Tensor | None = None,
            callback: Callable[[int, int, float, float], None] | None = None,
            ctx: Dist | None = None) -> KMeansResult:
        """x (N, D) -> the best restart. `init` (k, D) or (R, k, D) replaces k-means++.
        With `ctx` (torchrun) x is this rank's frames: the result is the same on every rank but
        for `labels`, which are x's."""
        ctx = ctx or Dist(rank=0, world_size=1, device=x.device)
        check_frames(x, self.k, n_frames=int(all_reduce_sum(torch.tensor([x.shape[0]], device=x.device), ctx)))
        start = time.perf_counter()
        if init is None:
            init = self.init_centres(x, ctx)
        init = (init if init.ndim == 3 else init[None]).to(device=x.device, dtype=x.dtype)
        if init.shape[1:] != (self.k, x.shape[1]):
            raise ValueError(f"init has shape {tuple(init.shape)}, expected (R, {self.k}, {x.shape[1]})")
        kw = dict(max_iter=self.max_iter, tol=self.tol, reassign_tol=self.reassign_tol,
                  backend=self.backend, chunk=self.chunk, callback=callback, ctx=ctx)
        with cpu_threads() if x.device.type == "cpu" else contextlib.nullcontext():
            if self.batch_restarts:
                results = lloyd(x, init, **kw)
            else:  # one restart after another; same numbers, less memory
                results = []
                for r in range(init.shape[0]):
                    cb = None if callback is None else (lambda it, _, i, f, r=r: callback(it, r, i, f))
                    results += [lloyd(x, init[r:r + 1], **{**kw, "callback": cb})[0]]
        for r, res in enumerate(results):
            res.restart = r
        best = min(results, key=lambda res: res.inertia)
        best.restart_inertias = [res.inertia for res in results]
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        best.seconds = time.perf_counter() - start
        return best
