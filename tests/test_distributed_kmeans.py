"""k-means on 2 gloo ranks against the single-process run: same labels, centres, iterations, stop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vocab.kmeans import KMeans
from tests.distributed_harness import run_ranks
from tests.planted import planted_frames
from utils.distributed import init_distributed, shard_sequences

K = 12


def frames(n: int) -> torch.Tensor:
    x, _ = planted_frames(n=n, k=8, std=0.9, seed=3)          # overlapping: tens of iterations, labels move
    return torch.from_numpy(x)


def fixed_init(x: torch.Tensor) -> torch.Tensor:
    """(2, K, D): two restarts; the second has two centres no frame is nearest to (re-seeded)."""
    g = torch.Generator().manual_seed(0)
    init = torch.stack([x[torch.randperm(len(x), generator=g)[:K]] for _ in range(2)])
    init[1, 4], init[1, 9] = 100.0, -100.0
    return init


# (frames, sequence lengths, KMeans arguments, fixed init?): k-means++ from a sample and from all
# frames; a corpus held by rank 0 alone (one sequence), so that rank 1 has no frames at all
CASES = [
    (3000, [500, 0, 1700, 300, 500], dict(max_iter=300, tol=0, reassign_tol=0), True),
    (3000, [500, 0, 1700, 300, 500], dict(n_init=2, init_sample=800, seed=4), False),
    (3000, [3000], dict(init_sample=10_000, seed=5), False),
    (3000, [3000], dict(max_iter=300, tol=0, reassign_tol=0), True),
]


def run(x: torch.Tensor, args: dict, fixed: bool, ctx=None):
    init = fixed_init(frames(3000)) if fixed else None
    return KMeans(k=K, **args).fit(x, init=init, ctx=ctx)


def _rank_fits() -> list:
    ctx = init_distributed("cpu")
    out = []
    for n, lengths, args, fixed in CASES:
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.tensor(lengths).cumsum(0)])
        mine = shard_sequences(offsets, ctx)
        x = frames(n)[int(offsets[mine.start]):int(offsets[mine.stop])]
        res = run(x, args, fixed, ctx)
        out.append({"labels": res.labels.numpy(), "centroids": res.centroids.numpy(), "counts": res.counts.numpy(),
                    "n_iter": res.n_iter, "stop": res.stop, "inertia": res.inertia, "mean_dist": res.mean_dist,
                    "relocated": [h["relocated"] for h in res.history], "restart": res.restart})
    return out


def test_two_ranks_equal_one_process():
    ranks = run_ranks(_rank_fits, timeout=120)
    for (n, lengths, args, fixed), got0, got1 in zip(CASES, *ranks):
        ref = run(frames(n), args, fixed)
        if len(lengths) == 1:
            assert len(got1["labels"]) == 0                    # rank 1 held nothing and still took part
        assert np.array_equal(np.concatenate([got0["labels"], got1["labels"]]), ref.labels.numpy())
        for got in (got0, got1):                                # every rank holds the same result
            np.testing.assert_allclose(got["centroids"], ref.centroids.numpy(), rtol=0, atol=1e-5)
            assert np.array_equal(got["counts"], ref.counts.numpy())
            assert (got["n_iter"], got["stop"], got["restart"]) == (ref.n_iter, ref.stop, ref.restart)
            assert got["relocated"] == [h["relocated"] for h in ref.history]
            assert got["inertia"] == pytest.approx(ref.inertia, rel=1e-9)
            assert got["mean_dist"] == pytest.approx(ref.mean_dist, rel=1e-9)
        if fixed:
            assert ref.n_iter > 5 and ref.stop == "converged"
            assert got0["relocated"][0] == 0 and ref.restart in (0, 1)
