"""embed.py import=FILE: Stanford GloVe text, word2vec text and binary (files written here byte by byte, as those
tools write them), the vocabulary check, and the treatments of tokens without a vector."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

import embed
from glove.import_vectors import detect_format
from vocab.tokens import Vocabulary

K, D = 5, 4


@pytest.fixture
def vocab_dir(tmp_path):
    g = torch.Generator().manual_seed(0)
    vocab = Vocabulary(centroids=torch.rand(K, 17, generator=g) * 5, counts=torch.full((K,), 900),
                       au_names=[f"AU{i:02d}" for i in range(1, 18)], min_count=500, max_dist=1.75)
    (tmp_path / "vocab").mkdir()
    vocab.save(tmp_path / "vocab")
    return tmp_path / "vocab", vocab


def _vectors(names, seed=1):
    rng = np.random.default_rng(seed)
    return {n: rng.normal(0, 1, D).astype(np.float32) for n in names}


def _text_lines(vectors: dict) -> list[str]:
    return [name + " " + " ".join(f"{v:.6f}" for v in vec) for name, vec in vectors.items()]


def _import(tmp_path, vocab_path, source, *extra):
    out = tmp_path / f"emb_{source.name}_{len(extra)}"
    embed.main([f"import={source}", f"tokens={vocab_path}", f"out={out}", *extra])
    return torch.load(out / f"embeddings_d{D}.pt", weights_only=True), json.loads((out / "import_report.json").read_text())


def test_three_formats_give_the_same_embeddings(tmp_path, vocab_dir):
    path, vocab = vocab_dir
    names = vocab.token_names                                   # <unk> <start> <end> c0..c4
    vecs = _vectors(["<raw_unk>", *names[1:]])                 # Stanford's vocab.txt name for our <unk>
    stanford_own_unk = np.full(D, 9.0, np.float32)             # glove.c appends its own <unk> (an average)
    glove_txt = tmp_path / "vectors.txt"
    glove_txt.write_text("\n".join(_text_lines(vecs) + ["<unk> " + " ".join(["9.000000"] * D)]) + "\n")
    w2v_txt = tmp_path / "vectors.w2v.txt"
    w2v_txt.write_text(f"{len(vecs)} {D}\n" + "\n".join(_text_lines(vecs)) + "\n")
    w2v_bin = tmp_path / "vectors.bin"
    w2v_bin.write_bytes(f"{len(vecs)} {D}\n".encode()
                        + b"".join(n.encode() + b" " + struct.pack(f"<{D}f", *v) + b"\n" for n, v in vecs.items()))
    assert [detect_format(p) for p in (glove_txt, w2v_txt, w2v_bin)] == ["glove_txt", "word2vec_txt", "word2vec_bin"]
    expected = np.stack([vecs["<raw_unk>"]] + [vecs[n] for n in names[1:]])     # (V, D) in our id order
    for source, atol, not_used in ((glove_txt, 1e-6, 1), (w2v_txt, 1e-6, 0), (w2v_bin, 0, 0)):
        emb, report = _import(tmp_path, path, source)
        np.testing.assert_allclose(emb["W"].numpy(), expected, rtol=0, atol=atol)
        assert emb["fingerprint"] == vocab.fingerprint and bool(emb["learned"].all()) and emb["tokens"] == names
        rep = report["dims"][str(D)]
        assert rep["not_used"]["count"] == not_used and rep["without_vector"]["count"] == 0
        assert rep["aliases"] == {"<raw_unk>": "<unk>"}
    assert not np.any(np.isclose(expected, stanford_own_unk))


@pytest.mark.parametrize("missing", ["mean", "zero", "random"])
def test_tokens_without_a_vector(tmp_path, vocab_dir, missing):
    path, vocab = vocab_dir
    vecs = _vectors([n for n in vocab.token_names if n not in ("c1", "c3")])
    source = tmp_path / "partial.txt"
    source.write_text("\n".join(_text_lines(vecs)) + "\n")
    emb, report = _import(tmp_path, path, source, f"import_missing={missing}")
    W, learned = emb["W"].numpy(), emb["learned"].numpy()
    assert learned.tolist() == [n not in ("c1", "c3") for n in vocab.token_names]
    have = np.stack(list(vecs.values()))
    fill = W[~learned]
    if missing == "mean":
        np.testing.assert_allclose(fill, np.broadcast_to(have.mean(0), fill.shape), atol=1e-6)
    elif missing == "zero":
        assert not fill.any()
    else:
        assert np.isfinite(fill).all() and not np.allclose(fill[0], fill[1])
    assert report["dims"][str(D)]["without_vector"] == {"count": 2, "tokens": ["c1", "c3"], "treatment": missing}


def test_the_vocabulary_check(tmp_path, vocab_dir):
    path, vocab = vocab_dir
    other = tmp_path / "other.txt"
    other.write_text("\n".join(_text_lines(_vectors(vocab.token_names + ["c7"]))) + "\n")
    with pytest.raises(ValueError, match="'c7' is not in the vocabulary .* another vocabulary"):
        _import(tmp_path, path, other)
    twice = tmp_path / "twice.txt"
    twice.write_text("\n".join(_text_lines(_vectors(["c0"])) * 2) + "\n")
    with pytest.raises(ValueError, match="'c0' has two vectors"):
        _import(tmp_path, path, twice)
    words = tmp_path / "words.txt"
    words.write_text("\n".join(_text_lines(_vectors(["the", "of"]))) + "\n")
    with pytest.raises(ValueError, match="none of its 2 names"):
        _import(tmp_path, path, words)
    nan = tmp_path / "nan.txt"
    nan.write_text("c0 " + " ".join(["nan"] * D) + "\n")
    with pytest.raises(ValueError, match="NaN"):
        _import(tmp_path, path, nan)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("c0 1 2 3 4\nc1 1 2 3\n")
    with pytest.raises(ValueError, match="line 2: 3 values, expected 4"):
        _import(tmp_path, path, ragged)
