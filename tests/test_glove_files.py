"""Exported vectors byte for byte (GloVe text, word2vec text and binary), their loading by gensim,
tokens left out of every Stanford file, and the embedding report against independent formulas."""
from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from glove.files import CREC, VECTOR_FORMATS, read_crec, write_crec, write_vectors, write_vocab_txt
from glove.report import embedding_report, spearman

NAMES = ["<unk>", "<start>", "<end>", "c0", "c1"]
VECTORS = torch.tensor([[0.5, -1.25, 3.0], [1e-7, 2.0, -0.0000004], [0.0, 0.0, 0.0],
                        [123.4567891, -9.8765432, 0.1], [-1.0, 1.0, 0.333333333]], dtype=torch.float64)
KEEP = torch.tensor([True, True, False, True, True])


def independent_bytes(fmt: str, names, vectors, keep) -> bytes:
    """Each format written from its definition, without the code under test."""
    rows = [(n, v) for n, v, k in zip(names, vectors.tolist(), keep.tolist()) if k]
    header = b"%d %d\n" % (len(rows), vectors.shape[1])
    if fmt == "word2vec_binary":
        return header + b"".join(n.encode() + b" " + struct.pack("<%df" % len(v), *v) + b"\n" for n, v in rows)
    text = "".join(" ".join([n] + ["%.6f" % x for x in v]) + "\n" for n, v in rows).encode()
    return (header if fmt == "word2vec" else b"") + text


@pytest.mark.parametrize("fmt", list(VECTOR_FORMATS))
def test_vector_files_are_the_formats_byte_for_byte(tmp_path, fmt):
    path = tmp_path / f"v{VECTOR_FORMATS[fmt]}"
    assert write_vectors(NAMES, VECTORS, path, format=fmt, keep=KEEP) == 4
    assert path.read_bytes() == independent_bytes(fmt, NAMES, VECTORS, KEEP)


@pytest.mark.parametrize("fmt", ["word2vec", "word2vec_binary"])
def test_gensim_loads_the_word2vec_files(tmp_path, fmt):
    gensim_models = pytest.importorskip("gensim.models")
    path = tmp_path / f"v{VECTOR_FORMATS[fmt]}"
    write_vectors(NAMES, VECTORS, path, format=fmt, keep=KEEP)
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(path), binary=fmt == "word2vec_binary")
    assert kv.index_to_key == ["<unk>", "<start>", "c0", "c1"] and kv.vector_size == 3
    tol = 1e-7 if fmt == "word2vec_binary" else 5e-7                     # float32 / 6 decimals
    np.testing.assert_allclose(kv["c0"], VECTORS[3].numpy(), rtol=tol, atol=5e-7)
    np.testing.assert_allclose(kv.vectors, VECTORS[KEEP].numpy(), rtol=tol, atol=5e-7)


def test_glove_text_loads_in_gensim_without_header(tmp_path):
    gensim_models = pytest.importorskip("gensim.models")
    path = tmp_path / "v.txt"
    write_vectors(NAMES, VECTORS, path, format="glove")
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=True)
    assert kv.index_to_key == NAMES


def test_names_with_whitespace_are_refused(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        write_vectors(["a b"], VECTORS[:1], tmp_path / "v.txt")


def test_left_out_tokens_renumber_crec_and_vocab(tmp_path):
    X = torch.zeros(5, 5, dtype=torch.float64)
    X[0, 1] = X[1, 0] = 3.0
    X[3, 4] = X[4, 3] = 2.5
    X[4, 4] = 8.0
    write_crec(X.to_sparse(), tmp_path / "c.bin", keep=KEEP)
    write_vocab_txt(NAMES, torch.tensor([4, 3, 0, 2, 6]), tmp_path / "vocab.txt", unk_name="<raw_unk>", keep=KEEP)
    assert (tmp_path / "vocab.txt").read_text() == "<raw_unk> 4\n<start> 3\nc0 2\nc1 6\n"
    records = np.fromfile(tmp_path / "c.bin", dtype=CREC)
    got = sorted(zip(records["word1"].tolist(), records["word2"].tolist(), records["value"].tolist()))
    assert got == [(1, 2, 3.0), (2, 1, 3.0), (3, 4, 2.5), (4, 3, 2.5), (4, 4, 8.0)]   # ids 1..4 in vocab.txt order
    assert torch.equal(read_crec(tmp_path / "c.bin", 4).to_dense(), X[KEEP][:, KEEP])
    X[2, 0] = 1.0
    with pytest.raises(ValueError, match="left-out token"):
        write_crec(X.to_sparse(), tmp_path / "c.bin", keep=KEEP)


def test_spearman_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    b[:50] = a[:50]
    a[::7] = 1.0                                                         # ties
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, rel=1e-12)


def test_report_of_vectors_that_are_the_centres():
    """Unit centres used as the vectors: cosine order is distance order, so neighbours agree exactly."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(30, 6))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.concatenate([rng.normal(size=(3, 6)), centres])         # 3 specials, then the clusters
    counts = np.arange(33) + 1.0
    report = embedding_report(vectors, counts=counts, centres=centres, centre_ids=np.arange(3, 33))
    assert report["spearman_cos_vs_centre_dist"] == pytest.approx(-1.0)
    assert report["knn_overlap@1"] == report["knn_overlap@5"] == report["knn_overlap@10"] == 1.0
    assert report["knn_overlap@5_chance"] == pytest.approx(5 / 29)
    cos = vectors @ vectors.T / np.outer(np.linalg.norm(vectors, axis=1), np.linalg.norm(vectors, axis=1))
    assert report["mean_pairwise_cosine"] == pytest.approx(cos[~np.eye(33, dtype=bool)].mean())


def test_report_leaves_out_tokens_not_learned():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(8, 4))
    learned = np.array([True] * 6 + [False] * 2)
    vectors[6:] = 1000.0
    report = embedding_report(vectors, counts=np.ones(8), learned=learned,
                              states=np.array([0, 0, 1, 1, 2, 2, 0, 0]))
    assert report["learned"] == 6 and report["norm_max"] < 100
    by_count = report["norm_median_by_count_quartile"]                   # equal counts: all in the top quartile
    assert by_count[3] == pytest.approx(np.median(np.linalg.norm(vectors[:6], axis=1))) and np.isnan(by_count[:3]).all()
    assert 0.0 <= report["hidden_state_nn_agreement"] <= 1.0 and report["hidden_state_nn_chance"] == pytest.approx(0.2)
