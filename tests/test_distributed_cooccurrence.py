"""Co-occurrence counted on 2 gloo ranks equals the single-process matrix exactly, empty shards included."""
from __future__ import annotations

import torch

from glove.cooccurrence import cooccurrence
from tests.distributed_harness import run_ranks
from utils.distributed import Dist, init_distributed, shard_sequences

# (window, weighting, unk, dense_max_entries): both accumulators (so both reductions), both weightings
SETTINGS = [(10, "none", "include", 1 << 26), (10, "none", "drop_pairs", 0),
            (3, "harmonic", "skip_tokens", 1 << 26), (7, "harmonic", "include", 0)]


def corpus(n_sequences: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 60, (n_sequences,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    return torch.randint(0, 40, (int(offsets[-1]),), generator=g), offsets


def count(tokens, offsets, setting, ctx=None) -> torch.Tensor:
    window, weighting, unk, dense_max = setting
    return cooccurrence(tokens, offsets, vocab_size=40, window=window, weighting=weighting, unk=unk,
                        chunk_tokens=500, dense_max_entries=dense_max, ctx=ctx)


def my_sequences(tokens, offsets, ctx):
    mine = shard_sequences(offsets, ctx)
    lo, hi = int(offsets[mine.start]), int(offsets[mine.stop])
    return tokens[lo:hi], offsets[mine.start:mine.stop + 1] - lo


def _rank_counts(sizes: list[int]) -> list:
    """On each rank, per corpus size: (tokens it holds, its share counted with ctx for every setting)."""
    ctx = init_distributed("cpu")
    out = []
    for n_sequences in sizes:
        tokens, offsets = my_sequences(*corpus(n_sequences), ctx)
        matrices = [count(tokens, offsets, setting, ctx) for setting in SETTINGS]
        out.append((int(tokens.numel()), [(X.indices().numpy(), X.values().numpy()) for X in matrices]))
    return out


def test_two_ranks_equal_one_process_exactly_even_with_an_empty_shard():
    sizes = [200, 1, 0]                                           # 1 sequence: rank 1 has none; 0: nobody has any
    ranks = run_ranks(_rank_counts, sizes, timeout=60)
    for n_sequences, (mine0, got0), (mine1, got1) in zip(sizes, *ranks):
        tokens, offsets = corpus(n_sequences)
        assert mine0 + mine1 == tokens.numel() and (mine1 == 0) == (n_sequences <= 1)
        for setting, *per_rank in zip(SETTINGS, got0, got1):
            X = count(tokens, offsets, setting)
            assert X._nnz() > 0 or n_sequences == 0
            for indices, values in per_rank:                      # every rank holds the whole matrix
                assert (indices == X.indices().numpy()).all() and (values == X.values().numpy()).all(), setting


def _bad_token_on_rank_1() -> str:
    ctx = init_distributed("cpu")
    tokens = torch.tensor([1, 2, 3]) if ctx.rank == 0 else torch.tensor([1, 99])
    try:
        count(tokens, torch.tensor([0, tokens.numel()]), SETTINGS[0], ctx)
    except ValueError as err:
        return str(err)
    return "no error"


def test_a_bad_id_on_one_rank_is_reported_on_every_rank():
    assert run_ranks(_bad_token_on_rank_1, timeout=60) == ["token ids must lie in [0, 40); found 1..99"] * 2


def test_sequence_shards_cover_everything_once_balanced_by_rows():
    lengths = torch.tensor([0, 5, 1, 1, 30, 0, 2, 2, 2, 9, 0])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    for world in (1, 2, 3, 5, 20):
        parts = [shard_sequences(offsets, Dist(rank=r, world_size=world, device=torch.device("cpu")))
                 for r in range(world)]
        assert [s for p in parts for s in p] == list(range(len(lengths)))
    halves = [shard_sequences(offsets, Dist(rank=r, world_size=2, device=torch.device("cpu"))) for r in (0, 1)]
    assert halves == [range(0, 5), range(5, 11)]       # the first boundary at or after row 26 of 52 is row 37
    one = torch.tensor([0, 7])
    assert [shard_sequences(one, Dist(rank=r, world_size=2, device=torch.device("cpu"))) for r in (0, 1)] == \
        [range(0, 1), range(1, 1)]
