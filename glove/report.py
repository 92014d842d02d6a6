"""What the embedding learnt: statistics of any (vocabulary, vectors) pair, trained here or imported.

`embedding_report` gives, for vectors (V, d) of the tokens of one vocabulary:
  - `spearman_cos_vs_centre_dist`: Spearman correlation, over pairs of cluster tokens, between the
    cosine similarity of their vectors and the Euclidean distance of their k-means centres (AU
    space). Vectors that follow the centres' geometry make it clearly negative.
  - `knn_overlap@k`: the share of each cluster token's k nearest neighbours (cosine, vector space)
    that are also among its k nearest in AU space (chance: k / (n - 1)).
  - `mean_pairwise_cosine`: of the learned tokens, off the diagonal (a strong common direction
    shows as a large positive value).
  - norms of the vectors: median / max, the Spearman correlation of norm with token count, and the
    median norm per quartile of token count (rare tokens' vectors grow where the fit is degenerate).
  - on the synthetic corpus (`states`): nearest-neighbour agreement with the generator's hidden
    states against chance (`token_states`, `nn_agreement`).
Tokens not learned (`learned` False: they never occur) are left out of every statistic.
"""
from __future__ import annotations

import numpy as np
import torch

KNN = (1, 5, 10)


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with ties given their mean rank (as Spearman's rho needs)."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    if (counts > 1).any():
        sums = np.bincount(inverse, weights=r)
        r = (sums / counts)[inverse]
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = ranks(np.asarray(a, np.float64)), ranks(np.asarray(b, np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def _cosine(x: np.ndarray) -> np.ndarray:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def _knn(similarity: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of the k most similar other rows."""
    s = similarity.copy()
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def embedding_report(vectors, *, counts, centres: np.ndarray | None = None, centre_ids: np.ndarray | None = None,
                     learned=None, states: np.ndarray | None = None) -> dict:
    """Statistics of vectors (V, d). counts (V,): token counts in the pretraining corpus; centres
    (k, D) with centre_ids (k,) the token id of each centre (cluster tokens); learned (V,) bool;
    states (V,) the majority hidden state of each token (-1: none), synthetic corpus only."""
    x = np.asarray(torch.as_tensor(vectors).detach().cpu().double().numpy())
    V = x.shape[0]
    counts = np.asarray(torch.as_tensor(counts).cpu().numpy(), dtype=np.float64)
    learned = np.ones(V, bool) if learned is None else np.asarray(torch.as_tensor(learned).cpu().numpy(), bool)
    ids = np.flatnonzero(learned)
    norms = np.linalg.norm(x[ids], axis=1)
    cos = _cosine(x[ids])
    off = ~np.eye(len(ids), dtype=bool)
    out = {"tokens": V, "learned": int(len(ids)), "dim": int(x.shape[1]),
           "mean_pairwise_cosine": float(cos[off].mean()) if len(ids) > 1 else float("nan"),
           "norm_median": float(np.median(norms)) if len(ids) else float("nan"),
           "norm_max": float(norms.max()) if len(ids) else float("nan"),
           "norm_max_token": int(ids[norms.argmax()]) if len(ids) else -1,
           "spearman_norm_vs_count": spearman(norms, counts[ids]) if len(ids) > 2 else float("nan")}
    quartiles = np.quantile(counts[ids], [0.25, 0.5, 0.75]) if len(ids) else []
    bins = np.searchsorted(quartiles, counts[ids], side="right")
    out["norm_median_by_count_quartile"] = [float(np.median(norms[bins == q])) if (bins == q).any() else float("nan")
                                            for q in range(4)]
    if centres is not None:
        centre_ids = np.asarray(centre_ids)
        keep = learned[centre_ids]
        c, t = np.asarray(centres, np.float64)[keep], centre_ids[keep]
        if len(t) > 2:
            dist = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))
            vcos = _cosine(x[t])
            upper = np.triu_indices(len(t), 1)
            out["spearman_cos_vs_centre_dist"] = spearman(vcos[upper], dist[upper])
            for k in KNN:
                if k < len(t):
                    a, b = _knn(vcos, k), _knn(-dist, k)
                    shared = [len(set(a[i]) & set(b[i])) for i in range(len(t))]
                    out[f"knn_overlap@{k}"] = float(np.mean(shared) / k)
                    out[f"knn_overlap@{k}_chance"] = k / (len(t) - 1)
    if states is not None:
        labels = np.where(learned, np.asarray(states), -1)
        agreement, chance = nn_agreement(x, labels)
        out["hidden_state_nn_agreement"], out["hidden_state_nn_chance"] = agreement, chance
    return out


def token_states(tokens: torch.Tensor, token_offsets: torch.Tensor, timestamps: torch.Tensor,
                 frame_offsets: torch.Tensor, sequence_ids: list[str], hidden: dict, vocab_size: int,
                 n_special: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(V,) majority hidden state of each token (-1: no frames) and (V,) the share of its frames in it.

    Token sequence s is <start>, one token per corpus frame of sequence s, <end>; a frame's hidden
    state is hidden["states"][video][round(timestamp * fps)].
    """
    n_states = len(hidden["state_names"])
    counts = np.zeros((vocab_size, n_states), dtype=np.int64)
    for s, video in enumerate(sequence_ids):
        frames = slice(int(frame_offsets[s]), int(frame_offsets[s + 1]))
        toks = tokens[int(token_offsets[s]) + 1:int(token_offsets[s + 1]) - 1].numpy()
        rows = np.rint(timestamps[frames].numpy() * hidden["fps"]).astype(np.int64)
        states = hidden["states"][video].numpy()[rows]
        np.add.at(counts, (toks, states), 1)
    counts[:n_special] = 0                                    # specials have no state
    total = counts.sum(1)
    majority = np.where(total > 0, counts.argmax(1), -1)
    purity = np.where(total > 0, counts.max(1) / np.maximum(total, 1), 0.0)
    return majority, purity


def nn_agreement(vectors: torch.Tensor | np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(share of rows whose cosine nearest neighbour has the same label, chance); rows with label -1 skipped."""
    keep = labels >= 0
    x = np.asarray(vectors, dtype=np.float64)[keep]
    y = labels[keep]
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    agreement = float((y[sim.argmax(1)] == y).mean())
    _, sizes = np.unique(y, return_counts=True)
    chance = float((sizes * (sizes - 1)).sum() / (len(y) * (len(y) - 1)))
    return agreement, chance
