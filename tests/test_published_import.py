"""The paper's published vocabulary and vectors (../shared/auglove, skipped when absent): every inconsistency
counted as MANIFEST.md describes the files; tokens and train.py's bilstm_glove with the imported pair."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cluster
import embed
import train
from glove.files import read_embeddings
from tests.planted import make_corpus
from tests.tiny_tasks import make_task, task_overrides
from vocab.tokens import UNK, Tokens, Vocabulary

AUGLOVE = Path(__file__).resolve().parents[1].parent / "shared" / "auglove"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    if not AUGLOVE.is_dir():
        pytest.skip(f"{AUGLOVE} is absent")
    root = tmp_path_factory.mktemp("published")
    cluster.main([f"import={AUGLOVE}", f"out={root / 'vocab'}"])
    embed.main([f"import={AUGLOVE}", f"tokens={root / 'vocab'}", f"out={root / 'emb'}", "dims=[25,100]", "device=cpu"])
    return root


def _csv(name: str) -> list[list[str]]:
    with open(AUGLOVE / name, newline="") as f:
        return [r for r in csv.reader(f) if r]


def test_the_vocabulary_report_counts_every_inconsistency(published):
    report = json.loads((published / "vocab" / "import_report.json").read_text())
    assert report["k"] == 1000 and report["vocab_size"] == 1003
    assert report["files"] == {"centres": "cluster_centers_action_units_1000.csv", "counts": "cluster_counter_1000.csv",
                               "index": "word2ind_1000_v2.csv", "index_not_read": []}
    assert report["frames_counted"] == 5_292_819 and (report["count_min"], report["count_max"]) == (80, 34_305)
    assert report["nan_centres"]["clusters"] == [689]
    assert report["clusters_without_count"]["clusters"] == [999]
    absent = report["clusters_absent_from_index"]
    assert absent["clusters"] == [379, 443, 714, 940, 999] and absent["covered_by_count_rule"] == 5 and absent["excluded"] == []
    assert report["unk_clusters"]["clusters"] == [379, 443, 714, 940, 999] and report["unk_clusters"]["frames"] == 1378
    assert report["usable_clusters"] == 1000 - 5 - 1 and report["index_tokens"] == 998

    vocab = Vocabulary.load(published / "vocab")
    assert vocab.k == 1000 and vocab.min_count == 501 and vocab.max_dist == 1.75 and vocab.excluded == ()
    centres = np.array([[float(x) if x else np.nan for x in r] for r in _csv("cluster_centers_action_units_1000.csv")])
    np.testing.assert_array_equal(vocab.centroids.numpy(), centres.astype(np.float32))   # NaN row kept as published
    counts = {int(c): int(n) for c, n in _csv("cluster_counter_1000.csv")}
    assert vocab.counts.tolist() == [counts.get(c, 0) for c in range(1000)]
    rows = (published / "vocab" / "vocab.tsv").read_text().splitlines()
    assert len(rows) == 1 + 1003 and rows[4].startswith("c0\t3\t3613\t")
    assert (published / "vocab" / "centroids.png").stat().st_size > 10_000 and list((published / "vocab" / "tb").glob("events.*"))


def test_tokens_of_a_corpus_with_the_published_vocabulary(published, tmp_path):
    vocab = Vocabulary.load(published / "vocab")
    centres = vocab.centroids.numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    picks = np.array([0, 800, 379, 505, 941] * 8)                       # 379 is rare: <unk>
    frames = centres[picks] + rng.normal(0, 0.05, (len(picks), 17))
    frames[3] = 4.9                                                     # far from every centre: <unk>
    frames = np.clip(frames, 0, 5).astype(np.float32)
    corpus = make_corpus(frames, n_sequences=4, offsets=[0, 10, 20, 30, 40])
    corpus.meta["au_names"] = vocab.au_names                           # as ingestion names them: AU01 ...
    corpus.save(tmp_path / "corpus")
    summary = cluster.main([f"corpus={tmp_path / 'corpus'}", f"vocab={published / 'vocab'}", f"out={tmp_path / 'tok'}",
                            "device=cpu"])
    tokens = Tokens.load(tmp_path / "tok", vocab=vocab)
    body = torch.cat([tokens.tokens[tokens.offsets[s] + 1:tokens.offsets[s + 1] - 1] for s in range(4)]).numpy()
    # the reference: brute force over the finite centres, then the released code's rule
    finite = np.isfinite(centres).all(axis=1)
    d = np.sqrt(((frames[:, None, :].astype(np.float64) - centres[None, finite]) ** 2).sum(-1))
    nearest = np.flatnonzero(finite)[d.argmin(1)]
    counts = vocab.counts.numpy()
    expected = np.where((counts[nearest] <= 500) | (d.min(1) > 1.75), UNK, nearest + 3)
    np.testing.assert_array_equal(body, expected)
    assert (body == UNK).sum() == 8 + 1 and summary["unk_fraction"] == pytest.approx(9 / 40)


def test_the_published_vectors_in_our_token_order(published):
    vocab = Vocabulary.load(published / "vocab")
    index = {name: int(i) for name, i in _csv("word2ind_1000_v2.csv")}
    rows = np.array([[float(x) for x in r] for r in _csv("glove_embeddings_25_1000cluster.csv")])   # (789, 25)
    emb = torch.load(published / "emb" / "embeddings_d25.pt", weights_only=True)
    assert emb["fingerprint"] == vocab.fingerprint and emb["tokens"] == vocab.token_names
    W = emb["W"].numpy()
    ours = {"<unk>": "<unk>", "<start>": "<START>", "<end>": "<END>"}
    learned = emb["learned"].numpy()
    for t, name in enumerate(vocab.token_names):
        pid = index.get(ours.get(name, name))
        if pid is not None and pid < len(rows):
            assert learned[t] and np.allclose(W[t], rows[pid], rtol=0, atol=1e-6), name
        else:
            assert not learned[t], name
    assert learned.sum() == 789 and (~learned).sum() == 209 + 5
    np.testing.assert_allclose(W[~learned], np.broadcast_to(rows.mean(0), ((~learned).sum(), 25)), atol=1e-6)
    assert torch.equal(emb["W_tilde"], torch.zeros(1003, 25))
    vectors = read_embeddings(published / "emb", d=25, tokens_fingerprint=vocab.fingerprint, vocab_size=1003)
    assert vectors.shape == (1003, 25)
    report = json.loads((published / "emb" / "import_report.json").read_text())
    missing = report["dims"]["25"]["without_vector"]
    assert missing["count"] == 214 and len(missing["published_id_without_row"]) == 209
    assert missing["not_in_token_index"] == ["c379", "c443", "c714", "c940", "c999"] and missing["treatment"] == "mean"
    assert sorted(report["dims"]) == ["100", "25"] and report["dims"]["100"]["file"].endswith("_v2.csv")


def test_train_py_bilstm_glove_with_the_published_pair(published, tmp_path):
    task = make_task(tmp_path / "task", kind="task_b", subjects=10, videos_per_subject=2, dims=())
    cluster.main([f"corpus={task['corpus']}", f"vocab={published / 'vocab'}", f"out={tmp_path / 'tok'}", "device=cpu"])
    task["tokens"], task["embeddings"] = str(tmp_path / "tok"), str(published / "emb")
    out = tmp_path / "run"
    argv = task_overrides("task_b", task) + ["task=task_b", "model=bilstm_glove", "bilstm_glove.d=25", "task_b.restarts=1",
                                             "train.max_epochs=2", "train.patience=1", "progress=false", f"out={out}"]
    assert train.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["targets"]["phq8"]["rmse"])
