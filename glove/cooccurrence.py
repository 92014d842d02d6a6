"""The V x V token co-occurrence matrix, built with tensor operations (CPU or CUDA), in chunks.

Counting rule (METHOD.md section 4). For every sequence (video) and every pair of positions
(i, i + d) with 1 <= d <= window inside that sequence, X[a, b] and X[b, a] both grow by the pair's
weight, where a, b are the two tokens: 1 (`weighting=none`, the released code) or 1/d
(`weighting=harmonic`, the Stanford `cooccur` tool). So a pair of identical tokens adds twice its
weight to the diagonal, as in the released code. `<start>`/`<end>` are counted like any token.
`<unk>` (id `unk_id`):
  - `include`      counted like any token (the released code);
  - `drop_pairs`   every pair that involves `<unk>` is dropped; other tokens keep their positions,
                   so distances are measured in the original sequence;
  - `skip_tokens`  `<unk>` tokens are removed before windowing, so their neighbours become adjacent
                   (as the Stanford `cooccur` tool treats out-of-vocabulary words).
With either exclusion the `<unk>` row and column are empty; the matrix stays V x V.

How, without a Python loop over tokens or videos: the sequences are laid out in one array with
`window` separator tokens (id V) after each one, so a window never reaches the next sequence
without passing through a separator, and a pair with a separator lands in row/column V, which is
discarded. For a chunk of positions i, the keys `a * (V+1) + b` of the pairs (i, i + d), d = 1..window,
are one broadcast add over a strided view; `bincount` counts them into a dense (V+1)^2 accumulator
when it is small enough (`dense_max_entries`), else `unique` merges them into a sorted sparse
(key, value) list chunk by chunk. Only one direction (i, i + d) is counted; X = C + C^T gives both
(and so 2 on the diagonal for a pair of identical tokens).

Exactness: counts are accumulated as whole numbers of units 1/L, with L = lcm(1..window) for the
harmonic weighting (L = 1 for `none`): int64 counts, or float64 holding whole numbers below 2^53,
so every addition is exact whatever the order, and the final float64 value is one correctly
rounded division. Chunked, unchunked, dense, sparse, CPU and CUDA therefore give
bit-identical matrices. If L * (largest possible count) would reach 2^53 (harmonic weighting with a
window above ~20 on a large corpus) the weights 1/d are added as floats instead and the last bits
may depend on the order; a warning says so.

Across ranks (torchrun; `ctx` from utils.distributed): each rank counts its own sequences and the
one-way unit counts are summed over ranks, so the same exactness holds: the matrix equals a single
process's bit for bit (the float fallback above excepted).

Memory beyond the token array itself (a few int32/int64 copies of it): per step `chunk_tokens` x
`window` keys (4 bytes each; + 8 bytes of weights when harmonic), and the dense accumulator with one
count vector ((V+1)^2 x 8 bytes each) or the sorted nonzeros found so far (16 bytes each).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from utils.config import ConfigError
from utils.distributed import Dist, all_gather_rows, all_reduce_sum
from utils.progress import progress

WEIGHTINGS = ("none", "harmonic")
UNK_RULES = ("include", "drop_pairs", "skip_tokens")
_EXACT = 2 ** 53


@dataclass
class CooccurrenceConfig:
    window: int = 10                   # tokens on each side (10 tokens ~ 2 s at 5 fps)
    weighting: str = "none"            # none (released code: +1 per pair) | harmonic (1/d, Stanford)
    unk: str = "include"               # include | drop_pairs | skip_tokens (see data/cooccurrence.py)
    chunk_tokens: int = 262_144        # positions per step (x window pairs): bounds the working memory
    dense_max_entries: int = 67_108_864  # dense (V+1)^2 accumulator up to this many entries, else sparse


def check_config(cfg, prefix: str = "cooccurrence") -> None:
    """Raise ConfigError naming the key of a value the builder cannot use."""
    if cfg.window < 1:
        raise ConfigError(f"{prefix}.window must be >= 1, got {cfg.window}")
    if cfg.weighting not in WEIGHTINGS:
        raise ConfigError(f"{prefix}.weighting must be one of {WEIGHTINGS}, got {cfg.weighting!r}")
    if cfg.unk not in UNK_RULES:
        raise ConfigError(f"{prefix}.unk must be one of {UNK_RULES}, got {cfg.unk!r}")
    if cfg.chunk_tokens < 1:
        raise ConfigError(f"{prefix}.chunk_tokens must be >= 1, got {cfg.chunk_tokens}")
    if cfg.dense_max_entries < 0:
        raise ConfigError(f"{prefix}.dense_max_entries must be >= 0, got {cfg.dense_max_entries}")


def cooccurrence(tokens: torch.Tensor, offsets: torch.Tensor, *, vocab_size: int, window: int = 10,
                 weighting: str = "none", unk: str = "include", unk_id: int = 0,
                 chunk_tokens: int = 262_144, dense_max_entries: int = 67_108_864,
                 ctx: Dist | None = None, show_progress: bool = False) -> torch.Tensor:
    """Coalesced sparse COO (V, V) float64 on the device of `tokens`.

    tokens   (M,) integer token ids in [0, vocab_size), sequences concatenated
    offsets  (S+1,) int64, sequence s is tokens[offsets[s]:offsets[s+1]]
    ctx      under torch.distributed (utils.distributed): each rank passes its own sequences (tokens
             on ctx.device) and every rank gets the matrix of all of them. The one-way counts, in
             whole units, are summed over ranks before the one division, so the matrix is
             bit-identical to one process counting every sequence. The reduction follows the
             accumulator: a dense one is all-reduced ((V+1)^2 entries: 8 MB at V = 1003, where the
             matrix is mostly nonzero anyway); a sparse one is all-gathered as (key, value) rows and
             merged. A rank with no sequences takes part with nothing.
    show_progress  a progress line per chunk of positions, with ETA (utils/progress.py), on rank 0.
    """
    check_config(CooccurrenceConfig(window, weighting, unk, chunk_tokens, dense_max_entries), prefix="cooccurrence")
    V, device = int(vocab_size), tokens.device
    ctx = ctx or Dist(rank=0, world_size=1, device=device)
    tokens, offsets = tokens.long(), offsets.to(device).long()
    # every rank must agree on the units (they depend on the total token count) and on bad ids
    lo, hi = (int(tokens.min()), int(tokens.max())) if tokens.numel() else (0, 0)
    stats = all_gather_rows(torch.tensor([[tokens.numel(), lo, hi]], device=device), ctx)  # (ranks, 3)
    stats = stats[stats[:, 0] > 0]
    if stats.numel() and (int(stats[:, 1].min()) < 0 or int(stats[:, 2].max()) >= V):
        raise ValueError(f"token ids must lie in [0, {V}); found {int(stats[:, 1].min())}..{int(stats[:, 2].max())}")
    if unk == "skip_tokens":
        tokens, offsets = _remove_token(tokens, offsets, unk_id)
    scale, units = _units(window, weighting, n_tokens=int(stats[:, 0].sum()))
    Vp = V + 1
    count = dict(V=V, window=window, units=units, chunk=int(chunk_tokens),
                 unk_id=unk_id if unk == "drop_pairs" else None, show=show_progress and ctx.is_main)
    if Vp * Vp <= dense_max_entries:
        acc = all_reduce_sum(_count_dense(tokens, offsets, **count), ctx)       # whole units: exact in any order
        one_way = acc.view(Vp, Vp)[:V, :V]
        both = (one_way + one_way.T).to(torch.float64)
        return (both / scale if scale != 1 else both).to_sparse().coalesce()
    keys, vals = _count_sparse(tokens, offsets, **count)
    if ctx.active:
        keys, vals = _sum_by_key(all_gather_rows(keys, ctx), all_gather_rows(vals, ctx))
    rows, cols = keys // Vp, keys % Vp
    index = torch.stack([torch.cat([rows, cols]), torch.cat([cols, rows])])     # both directions
    both = torch.sparse_coo_tensor(index, torch.cat([vals, vals]), (V, V), check_invariants=False)
    return both.coalesce() / scale                                               # exact sums, one rounding


def _pair_keys(tokens, offsets, *, V, window, units, unk_id, chunk, show=False):
    """Yield, chunk by chunk, the keys a*(V+1)+b of the one-way pairs (i, i+d), d = 1..window, and
    their weights in units (None: all 1); pairs with a separator (or a dropped <unk>) carry row/column V."""
    sep, Vp = V, V + 1
    key_dtype = torch.int32 if Vp * Vp < 2 ** 31 else torch.int64
    padded = _pad_sequences(tokens.to(key_dtype), offsets, sep=sep, window=window)  # (N,) N = M + S*window
    n_left = padded.numel() - window          # the last `window` positions are separators: no pairs start there
    if n_left <= 0:
        return
    if unk_id is not None:
        padded.masked_fill_(padded == unk_id, sep)                          # its pairs land on the separator
    left = padded * Vp                                                      # (N,) row part of each key
    following = padded.unfold(0, window, 1)                                 # (N-window+1, window): padded[i:i+window]
    unit_rows = None if all(u == 1 for u in units) else \
        torch.tensor(units, dtype=torch.float64, device=tokens.device).expand(min(chunk, n_left), window)
    with progress(total=-(-n_left // chunk), desc="co-occurrence", unit="chunk", enabled=show and n_left > chunk) as bar:
        for start in range(0, n_left, chunk):
            stop = min(start + chunk, n_left)
            keys = left[start:stop, None] + following[start + 1:stop + 1]      # (c, window)
            yield keys.reshape(-1), None if unit_rows is None else unit_rows[:stop - start].reshape(-1)
            bar.update(1, tokens=f"{stop:,}")


def _count_dense(tokens, offsets, *, V, units, **kw) -> torch.Tensor:
    """((V+1)^2,) one-way counts in units: int64, or float64 holding whole numbers."""
    whole = all(u == 1 for u in units)
    acc = torch.zeros((V + 1) ** 2, dtype=torch.int64 if whole else torch.float64, device=tokens.device)
    for keys, weights in _pair_keys(tokens, offsets, V=V, units=units, **kw):
        acc += torch.bincount(keys, weights=weights, minlength=acc.numel())
    return acc


def _count_sparse(tokens, offsets, *, V, units, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted keys (n,) int64 of the nonzero one-way counts and their values (n,) float64, in units."""
    Vp = V + 1
    keys_acc = torch.zeros(0, dtype=torch.int64, device=tokens.device)
    vals_acc = torch.zeros(0, dtype=torch.float64, device=tokens.device)
    for keys, weights in _pair_keys(tokens, offsets, V=V, units=units, **kw):
        keys = keys.long()
        real = (keys // Vp != V) & (keys % Vp != V)
        vals = torch.ones(keys.numel(), dtype=torch.float64, device=keys.device) if weights is None else weights
        keys_acc, vals_acc = _sum_by_key(torch.cat([keys_acc, keys[real]]), torch.cat([vals_acc, vals[real]]))
    return keys_acc, vals_acc


def _units(window: int, weighting: str, *, n_tokens: int) -> tuple[float, list]:
    """(L, weight of offset d in units of 1/L for d = 1..window): whole numbers unless that is not exact."""
    if weighting == "none":
        return 1.0, [1] * window
    L = math.lcm(*range(1, window + 1))
    largest = 2 * max(n_tokens, 1) * sum(L // d for d in range(1, window + 1))  # bound on any entry, in units
    if largest < _EXACT:
        return float(L), [L // d for d in range(1, window + 1)]
    warnings.warn(f"harmonic weighting with window={window} on {n_tokens} tokens cannot be counted in "
                  "exact units; adding 1/d as floats (the last bits may depend on summation order)")
    return 1.0, [1.0 / d for d in range(1, window + 1)]


def _pad_sequences(tokens: torch.Tensor, offsets: torch.Tensor, *, sep: int, window: int) -> torch.Tensor:
    """Sequences laid end to end, each followed by `window` copies of `sep`: (M + S*window,), dtype of tokens."""
    M, S = tokens.numel(), offsets.numel() - 1
    small = torch.int32 if M + S * window < 2 ** 31 else torch.int64    # int32: a 4x faster cumsum on CPU
    step = torch.ones(M, dtype=small, device=tokens.device)              # position increment per token
    starts = offsets[1:-1]
    starts = starts[starts < M]                                           # empty trailing sequences
    step.index_add_(0, starts, torch.full(starts.shape, window, dtype=small, device=tokens.device))
    pos = torch.cumsum(step, 0, dtype=small).long().sub_(1)               # (M,) where each token goes
    padded = torch.full((M + S * window,), sep, dtype=tokens.dtype, device=tokens.device)
    return padded.index_copy_(0, pos, tokens)


def _remove_token(tokens: torch.Tensor, offsets: torch.Tensor, token: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop every occurrence of `token`; offsets shrink accordingly (sequences may become empty)."""
    keep = tokens != token
    kept_before = torch.cat([keep.new_zeros(1, dtype=torch.int64), torch.cumsum(keep, 0)])  # (M+1,)
    return tokens[keep], kept_before[offsets]


def _sum_by_key(keys: torch.Tensor, vals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    unique, inverse = torch.unique(keys, return_inverse=True)              # sorted
    return unique, torch.zeros(unique.numel(), dtype=vals.dtype, device=vals.device).index_add_(0, inverse, vals)
