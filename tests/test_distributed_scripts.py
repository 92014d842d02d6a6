"""`torchrun --nproc_per_node=2` runs of the scripts write the same artifacts as single-process runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import numpy as np
import torch

from tests.planted import save_planted_corpus
from tests.test_embed_script import write_tokens

REPO = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, ranks: int = 1) -> str:
    """The script as a user runs it: plain python, or torchrun with `ranks` processes on this machine."""
    launch = [sys.executable] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    # one thread everywhere: torchrun sets it for its ranks, and a GEMM's rounding may depend on it
    proc = subprocess.run([*launch, script, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.slow   # ~8-11 s: three interpreters start
def test_torchrun_embed_equals_single_process(tmp_path):
    tokens = write_tokens(tmp_path / "vocab")
    args = [f"tokens={tokens}", "dims=[4]", "glove.epochs=20", "device=cpu"]
    run_script("embed.py", *args, f"out={tmp_path / 'one'}")
    log = run_script("embed.py", *args, f"out={tmp_path / 'two'}", ranks=2)
    assert "2 rank(s)" in log
    one, two = (load(tmp_path / o / "cooccurrence.pt") for o in ("one", "two"))
    assert one["ranks"] == 1 and two["ranks"] == 2
    assert torch.equal(one["matrix"].indices(), two["matrix"].indices())
    assert torch.equal(one["matrix"].values(), two["matrix"].values())
    for name in ("cooccurrence.bin", "vocab.txt", "vectors_d4.txt"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    a, b = (load(tmp_path / o / "embeddings_d4.pt") for o in ("one", "two"))
    assert torch.equal(a["W"], b["W"]) and a["losses"] == b["losses"]


@pytest.mark.slow   # ~12 s: six interpreters start
def test_torchrun_cluster_equals_single_process(tmp_path):
    save_planted_corpus(tmp_path / "corpus", n=4000, k=6, n_sequences=9)
    args = [f"corpus={tmp_path / 'corpus'}", "sweep=[3,6,12,24]", "min_count=50", "device=cpu"]
    run_script("cluster.py", *args, f"out={tmp_path / 'one'}")
    log = run_script("cluster.py", *args, f"out={tmp_path / 'two'}", ranks=2)
    assert "2 rank(s)" in log and "suggested k = 6" in log
    one, two = tmp_path / "one", tmp_path / "two"
    for k in (3, 6, 12, 24):
        a, b = load(one / "sweep" / f"k{k}.pt"), load(two / "sweep" / f"k{k}.pt")
        np.testing.assert_allclose(a["centroids"].numpy(), b["centroids"].numpy(), rtol=0, atol=1e-5)
        assert torch.equal(a["counts"], b["counts"]) and (a["n_iter"], a["stop"]) == (b["n_iter"], b["stop"])
    a, b = load(one / "tokens.pt"), load(two / "tokens.pt")
    assert torch.equal(a["tokens"], b["tokens"]) and torch.equal(a["offsets"], b["offsets"])
    assert a["video_ids"] == b["video_ids"] and a["fingerprint"] == b["fingerprint"]
    assert (one / "vocab.tsv").read_text() == (two / "vocab.tsv").read_text()
    without_seconds = lambda path: [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]
    assert without_seconds(one / "elbow.csv") == without_seconds(two / "elbow.csv")
    assert (two / "centroids.png").exists() and list((two / "tb").glob("events.*"))

    # a downstream corpus tokenised with that vocabulary (vocab=): 2 ranks, one of them with no video
    save_planted_corpus(tmp_path / "small", n=300, k=6, n_sequences=1, seed=1)
    down = [f"corpus={tmp_path / 'small'}", f"vocab={one}", "device=cpu"]
    run_script("cluster.py", *down, f"out={tmp_path / 'down1'}")
    run_script("cluster.py", *down, f"out={tmp_path / 'down2'}", ranks=2)
    a, b = load(tmp_path / "down1" / "tokens.pt"), load(tmp_path / "down2" / "tokens.pt")
    assert torch.equal(a["tokens"], b["tokens"]) and torch.equal(a["offsets"], b["offsets"])
    assert a["video_ids"] == b["video_ids"] and len(a["video_ids"]) == 1
    assert (tmp_path / "down1" / "summary.json").read_text() == (tmp_path / "down2" / "summary.json").read_text()
