"""embed.py end to end on a tiny tokens.pt: artifacts, formats, resumption, refusals, config errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import embed
from glove.cooccurrence import cooccurrence
from glove.files import CREC, read_crec, read_vectors_txt
from vocab.token_set import TokenFileError
from vocab.tokens import Vocabulary
from glove.trainer import GloveTrainer
from utils.config import ConfigError
from utils.runs import RunDirError

REPO = Path(__file__).resolve().parents[1]
V = 11
SPECIALS = {"<unk>": 0, "<start>": 1, "<end>": 2}
FAST = ["glove.epochs=30", "glove.converge=false", "glove.checkpoint_every=10", "glove.log_every=10", "device=cpu"]


def write_tokens(folder: Path, *, seed: int = 0, fingerprint: str | None = "vocab0001", vocab_tsv: bool = True) -> Path:
    g = torch.Generator().manual_seed(seed)
    sequences = []
    for _ in range(30):
        body = torch.randint(3, V, (int(torch.randint(0, 12, (1,), generator=g)),), generator=g)
        body[torch.rand(body.shape, generator=g) < 0.1] = 0                 # a few <unk>
        sequences.append(torch.cat([torch.tensor([1]), body, torch.tensor([2])]))
    lengths = torch.tensor([len(s) for s in sequences])
    data = {"tokens": torch.cat(sequences), "offsets": torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]),
            "video_ids": [f"s{i // 10}/v{i}" for i in range(30)], "fingerprint": fingerprint,
            "corpus_fingerprint": "corpus01", "vocab_size": V, "specials": SPECIALS}
    if fingerprint is None:
        del data["fingerprint"]
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(data, folder / "tokens.pt")
    if vocab_tsv:
        names = list(SPECIALS) + [f"c{c}" for c in range(V - 3)]
        aus = ["-"] * 3 + [f"AU{c + 1:02d}_r,AU12_r" for c in range(V - 3)]
        rows = ["token\tid\tcount\tmean_dist\tdominant_aus"]
        rows += [f"{n}\t{i}\t{10 * i}\t0.5\t{a}" for i, (n, a) in enumerate(zip(names, aus))]
        (folder / "vocab.tsv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def tokens_dir(tmp_path) -> Path:
    return write_tokens(tmp_path / "vocab")


def run(tokens: Path, out: Path, *extra: str) -> None:
    embed.main([f"tokens={tokens}", f"out={out}", "dims=[4,6]", *FAST, *extra])


def test_end_to_end_writes_every_artifact(tokens_dir, tmp_path):
    out = tmp_path / "embed"
    run(tokens_dir, out)
    saved = torch.load(tokens_dir / "tokens.pt", weights_only=False)
    cooc = torch.load(out / "cooccurrence.pt", weights_only=False)
    X = cooc["matrix"]
    assert cooc["fingerprint"] == "vocab0001" and X.shape == (V, V) and X.dtype == torch.float64
    expected = cooccurrence(saved["tokens"], saved["offsets"], vocab_size=V)
    assert torch.equal(X.to_dense(), expected.to_dense())

    # CREC: int32 word1, int32 word2, float64 value; 1-based ids in vocab.txt order
    records = np.fromfile(out / "cooccurrence.bin", dtype=np.dtype([("w1", "<i4"), ("w2", "<i4"), ("x", "<f8")]))
    assert CREC.itemsize == 16 and len(records) == X._nnz()
    dense = np.zeros((V, V))
    dense[records["w1"] - 1, records["w2"] - 1] = records["x"]
    assert records["w1"].min() >= 1 and np.array_equal(dense, X.to_dense().numpy())
    assert torch.equal(read_crec(out / "cooccurrence.bin", V).to_dense(), X.to_dense())

    vocab_lines = (out / "vocab.txt").read_text().splitlines()
    counts = torch.bincount(saved["tokens"], minlength=V).tolist()
    assert vocab_lines[0] == f"<raw_unk> {counts[0]}" and vocab_lines[1] == f"<start> {counts[1]}"
    assert vocab_lines[5] == f"c2 {counts[5]}" and len(vocab_lines) == V

    for d in (4, 6):
        emb = torch.load(out / f"embeddings_d{d}.pt", weights_only=False)
        assert emb["W"].shape == emb["W_tilde"].shape == (V, d) and emb["b"].shape == emb["b_tilde"].shape == (V,)
        assert emb["fingerprint"] == "vocab0001" and emb["tokens"][:3] == list(SPECIALS) and emb["epochs"] == 30
        names, vectors = read_vectors_txt(out / f"vectors_d{d}.txt")
        assert names == emb["tokens"]
        np.testing.assert_allclose(vectors, (emb["W"] + emb["W_tilde"]).numpy(), atol=5e-7)
        metadata = (out / "tb" / f"d{d}" / "00030" / f"glove_d{d}" / "metadata.tsv").read_text().splitlines()
        assert metadata[0] == "token\tcount\tdominant_aus" and metadata[4].startswith(f"c0\t{counts[3]}\tAU01_r")
        assert (out / "tb" / f"d{d}" / "projector_config.pbtxt").exists()
    assert not (out / "checkpoints").exists()
    summary = (out / "summary.json").read_text()
    assert '"4"' in summary and '"6"' in summary


def test_rerun_skips_finished_dims_and_adds_new_ones(tokens_dir, tmp_path, capsys):
    out = tmp_path / "embed"
    run(tokens_dir, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("embeddings_d*.pt")}
    capsys.readouterr()
    embed.main([f"tokens={tokens_dir}", f"out={out}", "dims=[4,6,3]", *FAST])
    log = capsys.readouterr().out
    assert "reusing" in log and "d=4: finished already" in log and "d=6: finished already" in log
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("embeddings_d[46].pt")} == before
    assert (out / "embeddings_d3.pt").exists()


def test_interrupted_dim_resumes_from_its_checkpoint(tokens_dir, tmp_path, monkeypatch, capsys):
    straight = tmp_path / "straight"
    run(tokens_dir, straight)
    real = GloveTrainer.run_epoch

    def crash_at_25(self):
        if self.dim == 6 and self.epoch == 25:
            raise KeyboardInterrupt
        return real(self)
    out = tmp_path / "crashed"
    monkeypatch.setattr(GloveTrainer, "run_epoch", crash_at_25)
    with pytest.raises(KeyboardInterrupt):
        run(tokens_dir, out)
    assert (out / "embeddings_d4.pt").exists() and not (out / "embeddings_d6.pt").exists()
    assert (out / "checkpoints" / "glove_d6.pt").exists()
    monkeypatch.setattr(GloveTrainer, "run_epoch", real)
    run(tokens_dir, out)
    assert "resuming from" in capsys.readouterr().out
    a, b = (torch.load(o / "embeddings_d6.pt", weights_only=False) for o in (straight, out))
    assert torch.equal(a["W"], b["W"]) and a["losses"] == b["losses"]


def test_tokens_without_a_fingerprint_are_refused(tmp_path):
    folder = write_tokens(tmp_path / "v", fingerprint=None)
    with pytest.raises(TokenFileError, match="fingerprint"):
        run(folder, tmp_path / "out")


def test_tokens_of_another_vocabulary_are_refused(tmp_path):
    vocab = Vocabulary(centroids=torch.rand(V - 3, 17), counts=torch.full((V - 3,), 600), au_names=[f"AU{i}" for i in range(17)],
                       min_count=500, max_dist=1.75)
    folder = write_tokens(tmp_path / "v", fingerprint=vocab.fingerprint)
    vocab.save(folder)
    run(folder, tmp_path / "ok")                                   # the matching vocabulary is accepted
    write_tokens(folder, fingerprint="another1")
    with pytest.raises(TokenFileError, match="expected vocabulary"):
        run(folder, tmp_path / "out")


def test_out_dir_of_other_tokens_is_refused(tokens_dir, tmp_path):
    out = tmp_path / "embed"
    run(tokens_dir, out)
    write_tokens(tokens_dir, seed=1)          # same path and config, other tokens
    with pytest.raises(RunDirError, match="other tokens"):
        run(tokens_dir, out)


def test_bad_vocab_tsv_is_named(tokens_dir, tmp_path):
    lines = (tokens_dir / "vocab.tsv").read_text().splitlines()
    lines[5] = lines[5].replace("c1", "c 1")      # id 4, line 6 of the file
    (tokens_dir / "vocab.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(TokenFileError, match=r"vocab.tsv, line 6, column token"):
        run(tokens_dir, tmp_path / "out")


def test_without_vocab_tsv_names_are_derived(tmp_path):
    folder = write_tokens(tmp_path / "v", vocab_tsv=False)
    out = tmp_path / "out"
    embed.main([f"tokens={folder}", f"out={out}", "dims=[2]", *FAST])
    names, _ = read_vectors_txt(out / "vectors_d2.txt")
    assert names[:4] == ["<unk>", "<start>", "<end>", "c0"] and len(names) == V


@pytest.mark.parametrize("override, key", [("glove.lrr=0.1", "lrr"), ("cooccurrence.weighting=inverse", "cooccurrence.weighting"),
                                           ("glove.dtype=half", "glove.dtype"), ("dims=[0]", "dims"),
                                           ("cooccurrence.window=ten", "cooccurrence.window")])
def test_config_errors_name_the_key(tokens_dir, tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run(tokens_dir, tmp_path / "out", override)


def test_command_line_reports_a_missing_tokens_key(tmp_path):
    proc = subprocess.run([sys.executable, "embed.py", f"out={tmp_path / 'out'}"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and "tokens: required" in proc.stderr and "Traceback" not in proc.stderr
