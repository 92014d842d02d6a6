"""The k sweep: one k-means per k, each kept on disk as it finishes, and the elbow's knee.

Each finished k is written atomically to `cache/k{k}.pt`; a re-run loads it instead of fitting
again, so an interrupted sweep resumes at the next k; a damaged one (truncated, garbage) is said
in one line and fitted again. The seed of each k is derived from
(seed, k), so a k's result does not depend on which other k ran before it.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vocab.kmeans import RESULT_PARAMS, KMeans
from utils.artifacts import ArtifactError, Tensor, check_fields, load_torch, require
from utils.distributed import Dist, broadcast_object
from utils.io import save_text, save_torch
from utils.seeds import seed_for

ELBOW_COLUMNS = ("k", "mean_dist", "inertia", "iterations", "seconds")


def fit_or_load(x: torch.Tensor, k: int, *, cache: str | Path, params: dict, corpus_fingerprint: str,
                backend: str = "auto", chunk: int = 0, batch_restarts: bool = True,
                callback: Callable[[int, int, float, float], None] | None = None, ctx: Dist | None = None) -> dict:
    """The k-means result for k: loaded from cache/k{k}.pt when a finished one is there, else fitted
    and saved. Returns {"k", "centroids" (k, D) CPU, "counts", "inertia", "mean_dist", "n_iter",
    "stop", "seconds", "history", "restart_inertias", "params", "corpus_fingerprint", "loaded"}.
    With `ctx` (torchrun) x is this rank's frames; rank 0 reads and writes the cache, and every
    rank returns the same result."""
    ctx = ctx or Dist(rank=0, world_size=1, device=x.device)
    params = {key: params[key] for key in RESULT_PARAMS}
    path = Path(cache) / f"k{k}.pt"
    found = None                             # rank 0: the finished result, or why it cannot be used
    if ctx.is_main and path.exists():
        try:
            found = read_sweep_result(path, k)
        except ArtifactError as err:         # a damaged cache heals: said in one line, then fitted again
            print(f"{err}; fitting k={k} again", file=sys.stderr)
            path.unlink()
        else:
            if found["corpus_fingerprint"] != corpus_fingerprint or found["params"] != params:
                found = (f"{path} was fitted on another corpus or with other settings "
                         f"({found['corpus_fingerprint']}, {found['params']}); delete it or use another out=")
    found = broadcast_object(found, ctx)
    if isinstance(found, str):
        raise ValueError(found)              # on every rank, so that none waits for the others
    if found is not None:
        return {**found, "loaded": True}
    km = KMeans(k=k, **{**params, "seed": seed_for(params["seed"], k)}, backend=backend, chunk=chunk,
                batch_restarts=batch_restarts)
    res = km.fit(x, callback=callback, ctx=ctx)
    saved = {"k": k, "centroids": res.centroids.float().cpu(), "counts": res.counts.cpu(), "inertia": res.inertia,
             "mean_dist": res.mean_dist, "n_iter": res.n_iter, "stop": res.stop, "seconds": res.seconds,
             "history": res.history, "restart_inertias": res.restart_inertias, "params": params,
             "corpus_fingerprint": corpus_fingerprint}
    if ctx.is_main:
        save_torch(saved, path)
    return {**saved, "loaded": False}


def read_sweep_result(path: str | Path, k: int) -> dict:
    """The one reader of sweep/k{k}.pt: every field checked."""
    obj = check_fields(load_torch(path, "k-means result"), path, "k-means result", {
        "k": int, "centroids": Tensor(ndim=2, dtype=torch.float32), "counts": Tensor(ndim=1), "inertia": float,
        "mean_dist": float, "n_iter": int, "stop": str, "seconds": float, "history": list,
        "restart_inertias": list, "params": dict, "corpus_fingerprint": str})
    require(obj["k"] == k and obj["centroids"].shape[0] == k and obj["counts"].shape == (k,), path,
            "k-means result", f"expected {k} centres, found {obj['centroids'].shape[0]}")
    return obj


def knee(ks: list[int], mean_dists: list[float]) -> int:
    """The k at the elbow of mean distance against log k (Kneedle, Satopaa et al. 2011).

    Both axes are scaled to [0, 1]; the knee is the point farthest below the chord joining the
    first and the last point (for a decreasing convex curve, the largest (1 - x) - y). With fewer
    than three k, or no point below the chord (no elbow), the largest k is returned.
    """
    order = np.argsort(ks)
    k = np.asarray(ks, dtype=np.float64)[order]
    y = np.asarray(mean_dists, dtype=np.float64)[order]
    if len(k) < 3 or y[0] == y[-1]:
        return int(k[-1])
    x = (np.log(k) - math.log(k[0])) / (math.log(k[-1]) - math.log(k[0]))
    y = (y - y[-1]) / (y[0] - y[-1])
    gap = (1 - x) - y
    best = int(np.argmax(gap))
    return int(k[best]) if gap[best] > 0 else int(k[-1])


def write_elbow_csv(path: str | Path, results: list[dict]) -> None:
    rows = [",".join(ELBOW_COLUMNS)]
    for r in sorted(results, key=lambda r: r["k"]):
        rows.append(f"{r['k']},{r['mean_dist']:.6f},{r['inertia']:.6g},{r['n_iter']},{r['seconds']:.3f}")
    save_text("\n".join(rows) + "\n", path)
