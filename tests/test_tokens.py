"""Token rules and artifacts, checked against plain Python loops."""
import math

import numpy as np
import pytest
import torch

from vocab.tokens import (END, START, UNK, Tokens, Vocabulary, check_finite, frame_tokens, nearest, tokenize,
                         with_boundaries, write_vocab_tsv)
from tests.planted import AU_NAMES, make_corpus, planted_frames


def reference_tokens(labels, dist, counts, offsets, min_count, max_dist):
    out, new_offsets = [], [0]
    for s in range(len(offsets) - 1):
        out.append(START)
        for i in range(offsets[s], offsets[s + 1]):
            c = labels[i]
            out.append(UNK if counts[c] < min_count or dist[i] > max_dist else c + 3)
        out.append(END)
        new_offsets.append(len(out))
    return out, new_offsets


def test_unk_rules_and_boundaries_match_a_loop():
    g = torch.Generator().manual_seed(0)
    k, n = 20, 3000
    labels = torch.randint(k, (n,), generator=g)
    dist = torch.rand(n, generator=g) * 3
    dist[:5] = 1.75                                            # exactly at the threshold: kept
    counts = torch.randint(480, 520, (k,), generator=g)
    counts[0], counts[1] = 500, 499                            # at and just under min_count
    offsets = torch.tensor([0, 0, 7, 7, 1000, 2999, 3000])     # empty sequences included
    tokens = frame_tokens(labels, dist, counts, min_count=500, max_dist=1.75)
    out, new_offsets = with_boundaries(tokens, offsets)
    ref, ref_offsets = reference_tokens(labels.tolist(), dist.tolist(), counts.tolist(), offsets.tolist(), 500, 1.75)
    assert out.tolist() == ref and new_offsets.tolist() == ref_offsets
    assert out.dtype == torch.int64 and len(out) == n + 2 * (len(offsets) - 1)
    assert (tokens[:5] != UNK).sum() == (counts[labels[:5]] >= 500).sum()
    assert bool((tokens[labels == 1] == UNK).all()) and bool((tokens[(labels == 0) & (dist <= 1.75)] == 3).all())


def _vocab(k=6, dim=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Vocabulary(centroids=torch.rand(k, dim, generator=g) * 5, counts=torch.randint(0, 1000, (k,), generator=g),
                      au_names=AU_NAMES[:dim], min_count=500, max_dist=1.75, corpus_fingerprint="abc")


def test_vocabulary_round_trip_and_fingerprint(tmp_path):
    vocab = _vocab()
    vocab.save(tmp_path)
    back = Vocabulary.load(tmp_path)
    assert torch.equal(back.centroids, vocab.centroids) and torch.equal(back.counts, vocab.counts)
    assert back.fingerprint == vocab.fingerprint and back.size == 9
    assert back.token_names[:4] == ["<unk>", "<start>", "<end>", "c0"]
    saved = torch.load(tmp_path / "centroids.pt")
    assert set(saved) >= {"centroids", "counts", "au_names", "fingerprint", "min_count", "max_dist"}
    for change in (dict(min_count=499), dict(max_dist=1.5), dict(counts=vocab.counts + 1),
                   dict(centroids=vocab.centroids + 1e-3)):
        other = Vocabulary(**{**vocab.__dict__, **change})
        assert other.fingerprint != vocab.fingerprint, change
    saved["centroids"][0, 0] += 1  # altered after saving
    torch.save(saved, tmp_path / "centroids.pt")
    with pytest.raises(ValueError, match="does not match its contents"):
        Vocabulary.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no vocabulary"):
        Vocabulary.load(tmp_path / "nowhere")


def test_tokens_from_another_vocabulary_or_corpus_are_refused(tmp_path):
    vocab, other = _vocab(seed=0), _vocab(seed=1)
    frames, _ = planted_frames(n=300, k=6)
    corpus = make_corpus(frames, n_sequences=5)
    labels, dist = nearest(corpus.frames, vocab.centroids)
    tokenize(corpus, vocab, labels, dist).save(tmp_path)
    ok = Tokens.load(tmp_path, vocab=vocab, corpus_fingerprint=corpus.fingerprint)
    assert ok.vocab_size == 9 and ok.video_ids == corpus.sequence_ids
    assert torch.load(tmp_path / "tokens.pt")["specials"] == {"<unk>": 0, "<start>": 1, "<end>": 2}
    with pytest.raises(ValueError, match="made with vocabulary .* not with the expected vocabulary"):
        Tokens.load(tmp_path, vocab=other)
    with pytest.raises(ValueError, match="not with the expected corpus"):
        Tokens.load(tmp_path, vocab=vocab.fingerprint, corpus_fingerprint="0123")


def test_nearest_gives_exact_distances():
    frames, _ = planted_frames(n=2000, k=6, std=0.5)
    vocab = _vocab()
    labels, dist = nearest(torch.from_numpy(frames), vocab.centroids)
    full = torch.cdist(torch.from_numpy(frames).double(), vocab.centroids.double(),
                       compute_mode="donot_use_mm_for_euclid_dist")
    assert torch.equal(labels, full.argmin(1))
    torch.testing.assert_close(dist.double(), full.min(1).values, rtol=1e-6, atol=1e-6)


def test_vocab_tsv_matches_a_loop(tmp_path):
    frames, _ = planted_frames(n=3000, k=6, std=0.8)
    corpus = make_corpus(frames, n_sequences=7)
    vocab = _vocab()
    labels, dist = nearest(corpus.frames, vocab.centroids)
    vocab.counts = torch.bincount(labels, minlength=vocab.k)
    vocab.min_count = int(vocab.counts.sort().values[1])       # the rarest cluster becomes <unk>
    tokens = tokenize(corpus, vocab, labels, dist)
    write_vocab_tsv(tmp_path / "vocab.tsv", vocab, tokens, labels, dist, min_intensity=1.0, top=3)
    rows = [line.split("\t") for line in (tmp_path / "vocab.tsv").read_text().splitlines()]
    assert rows[0] == ["token", "id", "count", "mean_dist", "dominant_aus"]
    assert [r[0] for r in rows[1:]] == vocab.token_names and [int(r[1]) for r in rows[1:]] == list(range(vocab.size))
    frame_tok = tokens.tokens[(tokens.tokens != START) & (tokens.tokens != END)]
    assert int(rows[1][2]) == int((frame_tok == UNK).sum()) > 0
    assert int(rows[2][2]) == int(rows[3][2]) == 7
    for c in range(vocab.k):
        members = [d for lab, d in zip(labels.tolist(), dist.tolist()) if lab == c]
        assert int(rows[4 + c][2]) == len(members)
        assert float(rows[4 + c][3]) == pytest.approx(sum(members) / len(members), abs=1e-4)
        top = sorted(zip(vocab.centroids[c].tolist(), AU_NAMES), reverse=True)[:3]
        assert rows[4 + c][4] == (",".join(f"{n.removesuffix('_r')}:{v:.2f}" for v, n in top if v >= 1.0) or "-")
    assert math.isnan(float(rows[2][3]))


def test_nan_frames_are_named():
    frames, _ = planted_frames(n=100, k=3)
    corpus = make_corpus(frames, n_sequences=4, offsets=[0, 10, 10, 60, 100])
    check_finite(corpus, "c")
    corpus.frames[62, 8] = float("nan")  # third frame of the fourth video
    corpus.frames[70, 1] = float("inf")
    with pytest.raises(ValueError, match=r"c: 2 frames hold NaN or inf; the first is frame 2 of video s000/v0003 "
                                         r"\(corpus row 62\), column AU12_r"):
        check_finite(corpus, "c")


def test_corpus_with_other_aus_is_refused():
    frames, _ = planted_frames(n=100, k=3, dim=5)
    corpus = make_corpus(frames, n_sequences=2)
    vocab = _vocab(dim=5)
    vocab.au_names = list(reversed(vocab.au_names))
    labels, dist = nearest(corpus.frames, vocab.centroids)
    with pytest.raises(ValueError, match="differ from the vocabulary"):
        tokenize(corpus, vocab, labels, dist)
