"""cluster.py end to end: planted corpora (sweep, knee, resume, tokens, vocab=, bad input) and a small
synthetic corpus (tokens against the generator's hidden expression states; the command line)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

import cluster
from data.openface.corpus import FrameCorpus
from vocab.tokens import END, START, UNK, Tokens, Vocabulary
from vocab.kmeans import KMeans
from tests.planted import make_corpus, planted_frames, save_planted_corpus
from utils.config import ConfigError
from utils.runs import RunDirError

SMALL = ["min_count=50", "device=cpu"]
ONE_K = ["sweep=[]", "device=cpu"]   # the default config sweeps k up to 500: too many for these corpora


def test_sweep_then_tokens_for_the_knee(tmp_path):
    corpus, truth = save_planted_corpus(tmp_path / "corpus", n=6000, k=12, n_sequences=40)
    summary = cluster.main([f"corpus={tmp_path / 'corpus'}", f"out={tmp_path / 'out'}", "sweep=[4,8,12,24,48]", *SMALL])
    out = tmp_path / "out"
    assert summary["suggested_k"] == 12 and summary["k"] == 12
    for name in ("config.yaml", "elbow.csv", "elbow.png", "centroids.pt", "vocab.tsv", "centroids.png",
                 "summary.json", "tokens.pt", "sweep/k4.pt", "sweep/k48.pt"):
        assert (out / name).exists(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader(open(out / "elbow.csv")))
    assert [int(r["k"]) for r in rows] == [4, 8, 12, 24, 48]
    assert set(rows[0]) == {"k", "mean_dist", "inertia", "iterations", "seconds"}
    dists = [float(r["mean_dist"]) for r in rows]
    assert dists == sorted(dists, reverse=True)

    vocab = Vocabulary.load(out)
    tokens = Tokens.load(out, vocab=vocab, corpus_fingerprint=corpus.fingerprint)
    assert vocab.k == 12 and tokens.vocab_size == 15 and int(vocab.counts.sum()) == 6000
    assert len(tokens.tokens) == 6000 + 2 * 40
    assert tokens.offsets.tolist() == (corpus.offsets + 2 * torch.arange(41)).tolist()
    starts, ends = tokens.offsets[:-1], tokens.offsets[1:] - 1
    assert bool((tokens.tokens[starts] == START).all()) and bool((tokens.tokens[ends] == END).all())
    inner = torch.ones(len(tokens.tokens), dtype=torch.bool)
    inner[starts], inner[ends] = False, False
    frame_tokens = tokens.tokens[inner]                       # one per corpus frame, in corpus order
    kept = frame_tokens != UNK
    assert adjusted_rand_score(truth[kept.numpy()], frame_tokens[kept].numpy()) == 1.0
    assert summary["unk_fraction"] == pytest.approx(1 - float(kept.float().mean()))
    assert len((out / "vocab.tsv").read_text().splitlines()) == 1 + 15


def test_interrupted_sweep_resumes_at_the_next_k(tmp_path, monkeypatch):
    save_planted_corpus(tmp_path / "corpus", n=3000, k=6, n_sequences=10)
    args = [f"corpus={tmp_path / 'corpus'}", "sweep=[3,6,9]", "k=6", *SMALL]
    fitted, real_fit = [], KMeans.fit

    def fit_then_die(self, x, **kw):
        if fitted:
            raise KeyboardInterrupt("killed during the second k")
        fitted.append(self.k)
        return real_fit(self, x, **kw)

    monkeypatch.setattr(KMeans, "fit", fit_then_die)
    with pytest.raises(KeyboardInterrupt):
        cluster.main([f"out={tmp_path / 'out'}", *args])
    assert sorted(p.name for p in (tmp_path / "out" / "sweep").iterdir()) == ["k3.pt"]  # nothing half-written
    assert not (tmp_path / "out" / "tokens.pt").exists()

    def counting_fit(self, x, **kw):
        fitted.append(self.k)
        return real_fit(self, x, **kw)

    monkeypatch.setattr(KMeans, "fit", counting_fit)
    cluster.main([f"out={tmp_path / 'out'}", *args])
    assert fitted == [3, 6, 9]                                # k=3 was not fitted again
    cluster.main([f"out={tmp_path / 'again'}", *args])        # the same sweep, never interrupted
    for k in (3, 6, 9):
        a = torch.load(tmp_path / "out" / "sweep" / f"k{k}.pt")
        b = torch.load(tmp_path / "again" / "sweep" / f"k{k}.pt")
        assert torch.equal(a["centroids"], b["centroids"]) and a["inertia"] == b["inertia"]
    assert (tmp_path / "out" / "tokens.pt").read_bytes() == (tmp_path / "again" / "tokens.pt").read_bytes()


def test_downstream_corpus_uses_pretraining_counts(tmp_path):
    save_planted_corpus(tmp_path / "pre", n=6000, k=6, n_sequences=20)
    cluster.main([f"corpus={tmp_path / 'pre'}", f"out={tmp_path / 'vocab'}", "k=6", "min_count=500", *ONE_K])
    vocab = Vocabulary.load(tmp_path / "vocab")
    assert int(vocab.counts.min()) >= 500
    # a small downstream corpus from the same clusters: every cluster under 500 frames here
    frames, _ = planted_frames(n=300, k=6, seed=0)
    make_corpus(frames, n_sequences=3, seed=5, prefix="d").save(tmp_path / "down")
    summary = cluster.main([f"corpus={tmp_path / 'down'}", f"vocab={tmp_path / 'vocab'}", f"out={tmp_path / 'tok'}",
                            "device=cpu"])
    tokens = Tokens.load(tmp_path / "tok", vocab=vocab)
    assert summary["unk_fraction"] == 0.0 and int((tokens.tokens == UNK).sum()) == 0
    assert tokens.video_ids == ["d000/v0000", "d000/v0001", "d000/v0002"] and len(tokens.tokens) == 306
    assert not (tmp_path / "tok" / "centroids.pt").exists()


def test_bad_input_is_named(tmp_path):
    save_planted_corpus(tmp_path / "corpus", n=200, k=3, n_sequences=4)
    base = [f"corpus={tmp_path / 'corpus'}", *ONE_K]
    with pytest.raises(ConfigError, match="k=201: must be between 1 and the corpus's 200 frames"):
        cluster.main([*base, f"out={tmp_path / 'o1'}", "sweep=[3,201]"])
    assert not (tmp_path / "o1").exists()                      # refused before any work
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cluster.main([f"corpus={tmp_path / 'nowhere'}", f"out={tmp_path / 'o2'}", "k=3", *ONE_K])
    with pytest.raises(ConfigError, match="give k=K, sweep"):
        cluster.main([*base, f"out={tmp_path / 'o3'}"])
    with pytest.raises(ConfigError, match="kk"):
        cluster.main([*base, f"out={tmp_path / 'o4'}", "kk=3"])
    with pytest.raises(FileNotFoundError, match="no vocabulary"):
        cluster.main([*base, f"out={tmp_path / 'o5'}", f"vocab={tmp_path / 'nowhere'}"])
    corpus = FrameCorpus.load(tmp_path / "corpus")
    corpus.frames[corpus.offsets[2] + 1, 0] = float("nan")
    corpus.save(tmp_path / "nan")
    with pytest.raises(ValueError, match=f"frame 1 of video {corpus.sequence_ids[2]} .* column AU01_r"):
        cluster.main([f"corpus={tmp_path / 'nan'}", f"out={tmp_path / 'o6'}", "k=3", *ONE_K])


def test_rerun_with_other_thresholds_in_the_same_out_is_refused(tmp_path):
    save_planted_corpus(tmp_path / "corpus", n=600, k=3, n_sequences=4)
    args = [f"corpus={tmp_path / 'corpus'}", f"out={tmp_path / 'out'}", "k=3", *ONE_K]
    cluster.main([*args, "min_count=10"])
    cluster.main([*args, "min_count=10", "k=4"])               # another k in the same run directory is fine
    assert Vocabulary.load(tmp_path / "out").k == 4
    with pytest.raises(RunDirError, match="min_count"):
        cluster.main([*args, "min_count=20"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["k"] == 4


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small synthetic pretraining corpus (synth + ingest) and its hidden states."""
    from data.openface.ingest import ingest
    from data.synth.generate import generate
    root = tmp_path_factory.mktemp("synthetic")
    generate(root / "synth", {"kind": "pretrain", "seed": 3, "workers": 1, "pretrain.n_subjects": 24,
                              "pretrain.videos_per_subject": 6.0})
    ingest(root / "synth" / "openface", root / "corpus", {"workers": 1, "progress": False})
    return root


def hidden_state_of_frames(corpus: FrameCorpus, hidden: dict) -> np.ndarray:
    """Synthetic timestamps are row / fps exactly, so frame -> CSV row -> hidden state."""
    states = np.empty(corpus.n_frames, dtype=np.int64)
    offsets = corpus.offsets.tolist()
    for s, vid in enumerate(corpus.sequence_ids):
        rows = np.rint(corpus.timestamps[offsets[s]:offsets[s + 1]].numpy() * hidden["fps"]).astype(np.int64)
        states[offsets[s]:offsets[s + 1]] = hidden["states"][vid].numpy()[rows]
    return states


def test_tokens_follow_hidden_expression_states(synthetic):
    root = synthetic
    summary = cluster.main([f"corpus={root / 'corpus'}", f"out={root / 'vocab'}", "k=32", "min_count=20", *ONE_K])
    corpus = FrameCorpus.load(root / "corpus")
    tokens = Tokens.load(root / "vocab", corpus_fingerprint=corpus.fingerprint)
    hidden = torch.load(root / "synth" / "hidden.pt", weights_only=False)
    states = hidden_state_of_frames(corpus, hidden)
    body = tokens.tokens[(tokens.tokens != START) & (tokens.tokens != END)].numpy()   # one per corpus frame
    kept = body != UNK
    ami = adjusted_mutual_info_score(states[kept], body[kept])
    rng = np.random.default_rng(0)
    chance = max(adjusted_mutual_info_score(states[kept], rng.permutation(body[kept])) for _ in range(5))
    # measured: AMI 0.52 (10k frames, k = 32) against <= 0.001 for shuffled tokens; demo corpus (62k, knee k = 50): 0.52
    assert ami > 0.35 and chance < 0.01, (ami, chance)
    assert summary["unk_fraction"] < 0.1


def test_command_line(synthetic, tmp_path):
    repo = Path(cluster.__file__).resolve().parent
    run = lambda *args: subprocess.run([sys.executable, "cluster.py", *args], cwd=repo, capture_output=True, text=True)
    corpus = f"corpus={synthetic / 'corpus'}"
    done = run(corpus, f"out={tmp_path / 'o'}", "sweep=[4,8,16]", "k=8", "min_count=20", "device=cpu")
    assert done.returncode == 0, done.stderr
    assert "no knee claimed (3 k values" in done.stdout and (tmp_path / "o" / "tokens.pt").exists()
    assert "k-means k=16: " in done.stderr and "k sweep: 3/3 k (100%)" in done.stderr  # plain progress lines
    three = run(corpus, f"out={tmp_path / 'o3'}", "sweep=[4,8,16]", "min_count=20", "device=cpu")
    assert three.returncode == 2 and "no knee is claimed with fewer than 4; give k=K" in three.stderr
    bad = run(corpus, f"out={tmp_path / 'p'}", "k=4", "sweep=[]", "min_cout=3")
    assert bad.returncode != 0 and "min_cout" in bad.stderr
