"""Do the embeddings group tokens of the same hidden expression state? (synthetic data only)

Each cluster token gets the hidden state most of its frames were generated in (`token_states`);
`nn_agreement` is the share of tokens whose nearest other token (cosine similarity) has the same
state, against chance: the probability that another token drawn at random shares it.
"""
from __future__ import annotations

import numpy as np
import torch


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
