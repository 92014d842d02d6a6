"""The tensor co-occurrence builder against a plain Python reference, exactly."""
from __future__ import annotations

import warnings
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings, strategies as st

from glove.cooccurrence import cooccurrence
from utils.config import ConfigError

UNK = 0


def reference(sequences: list[list[int]], *, window: int, weighting: str, unk: str) -> dict:
    """Loops over videos and positions; exact rational weights, rounded once at the end."""
    X: dict[tuple[int, int], Fraction] = {}
    for seq in sequences:
        if unk == "skip_tokens":
            seq = [t for t in seq if t != UNK]
        for i in range(len(seq)):
            for d in range(1, window + 1):
                if i + d >= len(seq):
                    break
                a, b = seq[i], seq[i + d]
                if unk == "drop_pairs" and UNK in (a, b):
                    continue
                w = Fraction(1, d) if weighting == "harmonic" else Fraction(1)
                X[a, b] = X.get((a, b), 0) + w
                X[b, a] = X.get((b, a), 0) + w
    return {k: float(v) for k, v in X.items()}


def as_tensors(sequences):
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    tokens = torch.tensor([t for s in sequences for t in s], dtype=torch.long)
    return tokens, offsets


def as_dict(matrix: torch.Tensor) -> dict:
    assert matrix.is_sparse and matrix.is_coalesced() and matrix.dtype == torch.float64
    return {(i, j): v for (i, j), v in zip(matrix.indices().T.tolist(), matrix.values().tolist())}


@st.composite
def corpora(draw):
    V = draw(st.integers(1, 12))
    lengths = draw(st.lists(st.sampled_from([0, 1, 1, 2, 2, 3, 4, 5, 8, 13]), max_size=25))
    sequences = [draw(st.lists(st.integers(0, V - 1), min_size=n, max_size=n)) for n in lengths]
    return V, sequences


@pytest.mark.parametrize("unk", ["include", "drop_pairs", "skip_tokens"])
@pytest.mark.parametrize("weighting", ["none", "harmonic"])
@pytest.mark.parametrize("window", [1, 2, 10])
@settings(max_examples=25, deadline=None)
@given(corpus=corpora(), chunk=st.sampled_from([1, 5, 1 << 20]))
def test_equals_plain_reference(corpus, chunk, window, weighting, unk):
    V, sequences = corpus
    tokens, offsets = as_tensors(sequences)
    expected = reference(sequences, window=window, weighting=weighting, unk=unk)
    for dense_max in (0, 1 << 26):   # sparse and dense accumulators
        X = cooccurrence(tokens, offsets, vocab_size=V, window=window, weighting=weighting, unk=unk,
                         unk_id=UNK, chunk_tokens=chunk, dense_max_entries=dense_max)
        assert X.shape == (V, V)
        assert as_dict(X) == expected


def test_identical_pair_adds_two_to_the_diagonal_and_counts_are_symmetric():
    tokens, offsets = as_tensors([[4, 4], [1, 4, 5, 2]])
    X = cooccurrence(tokens, offsets, vocab_size=6, window=1).to_dense()
    assert X[4, 4] == 2 and X[1, 4] == X[4, 1] == 1 and X[4, 5] == X[5, 4] == 1 and X[5, 2] == 1
    assert X[4, 1:].sum() == 4 and torch.equal(X, X.T)
    assert X[2, 4] == 0                                        # no pair across the video boundary


def test_unk_rules_differ_as_documented():
    tokens, offsets = as_tensors([[3, UNK, 4]])
    args = dict(vocab_size=5, window=1)
    drop = cooccurrence(tokens, offsets, unk="drop_pairs", **args).to_dense()
    skip = cooccurrence(tokens, offsets, unk="skip_tokens", **args).to_dense()
    keep = cooccurrence(tokens, offsets, unk="include", **args).to_dense()
    assert drop.sum() == 0                                      # positions kept: 3 and 4 are 2 apart
    assert skip[3, 4] == 1 and skip.sum() == 2                  # <unk> removed: 3 and 4 become adjacent
    assert keep[3, UNK] == keep[UNK, 4] == 1 and keep[3, 4] == 0


@pytest.mark.parametrize("weighting", ["none", "harmonic"])
def test_chunking_and_accumulator_give_bit_identical_matrices(weighting):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(0, 40, (300,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    tokens = torch.randint(0, 50, (int(offsets[-1]),), generator=g)
    runs = [cooccurrence(tokens, offsets, vocab_size=50, weighting=weighting, chunk_tokens=c, dense_max_entries=m)
            for c in (1 << 22, 1000, 7) for m in (1 << 26, 0)]
    for X in runs[1:]:
        assert torch.equal(X.indices(), runs[0].indices()) and torch.equal(X.values(), runs[0].values())


def test_large_window_harmonic_falls_back_to_float_weights_with_a_warning():
    g = torch.Generator().manual_seed(1)
    sequences = [torch.randint(0, 6, (50,), generator=g).tolist() for _ in range(20)]
    tokens, offsets = as_tensors(sequences)
    with pytest.warns(UserWarning, match="exact units"):
        X = cooccurrence(tokens, offsets, vocab_size=6, window=30, weighting="harmonic")
    expected = reference(sequences, window=30, weighting="harmonic", unk="include")
    got = as_dict(X)
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - v) <= 1e-12 * v for k, v in expected.items())


def test_exact_path_does_not_warn():
    tokens, offsets = as_tensors([[1, 2, 3, 4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cooccurrence(tokens, offsets, vocab_size=5, window=10, weighting="harmonic")


def test_bad_inputs_are_named():
    tokens, offsets = as_tensors([[1, 7]])
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        cooccurrence(tokens, offsets, vocab_size=5)
    with pytest.raises(ConfigError, match="cooccurrence.weighting"):
        cooccurrence(tokens, offsets, vocab_size=8, weighting="inverse")
    with pytest.raises(ConfigError, match="cooccurrence.window"):
        cooccurrence(tokens, offsets, vocab_size=8, window=0)


def test_empty_corpus_gives_an_empty_matrix():
    X = cooccurrence(torch.zeros(0, dtype=torch.long), torch.zeros(1, dtype=torch.long), vocab_size=4)
    assert X.shape == (4, 4) and X._nnz() == 0


@pytest.mark.gpu
@pytest.mark.parametrize("weighting", ["none", "harmonic"])
def test_cuda_equals_cpu_exactly(weighting):
    g = torch.Generator().manual_seed(2)
    lengths = torch.randint(0, 60, (2000,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    tokens = torch.randint(0, 300, (int(offsets[-1]),), generator=g)
    cpu = cooccurrence(tokens, offsets, vocab_size=300, weighting=weighting, unk="drop_pairs")
    for dense_max in (1 << 26, 0):
        gpu = cooccurrence(tokens.cuda(), offsets.cuda(), vocab_size=300, weighting=weighting, unk="drop_pairs",
                           chunk_tokens=10_000, dense_max_entries=dense_max).cpu()
        assert torch.equal(gpu.indices(), cpu.indices()) and torch.equal(gpu.values(), cpu.values())
