"""Pictures a researcher can read: the knee claimed only with 4 or more k, every figure in TensorBoard as an
image, hparams for the cluster run, the centroid colour scale, plain progress lines when not on a terminal."""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.colors import PowerNorm
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

import cluster
from glove.plots import dominant_label, embedding_figures
from tests.planted import save_planted_corpus
from utils.progress import Progress
from vocab.plots import plot_centroids


def _tags(folder) -> dict[str, set]:
    """plugin -> tags written by every event file in `folder` (add_hparams writes its own file)."""
    found: dict[str, set] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                found.setdefault(value.metadata.plugin_data.plugin_name or "scalars", set()).add(value.tag)
    return found


def test_cluster_run_sends_its_figures_and_hparams_to_tensorboard(tmp_path, capsys):
    save_planted_corpus(tmp_path / "corpus", n=1500, k=6, n_sequences=8)
    summary = cluster.main([f"corpus={tmp_path / 'corpus'}", f"out={tmp_path / 'out'}", "sweep=[2,4,6,12]",
                            "min_count=20", "device=cpu"])
    assert summary["suggested_k"] == 6
    tags = _tags(tmp_path / "out" / "tb")
    assert {"vocabulary/elbow", "vocabulary/centroids"} <= set(tags["images"])
    assert "_hparams_/session_start_info" in tags["hparams"]
    assert "hparam/mean_dist" in tags["scalars"] and "elbow/mean_dist" in tags["scalars"]
    err = capsys.readouterr().err                         # pytest's stderr is no terminal: plain lines
    assert "k sweep: 4/4 k (100%)" in err and "\r" not in err


def test_centroid_scale_and_marks(tmp_path):
    norm = PowerNorm(gamma=0.5, vmin=0, vmax=5)           # the scale plot_centroids draws with
    assert norm(0.5) > 0.3 and norm(1.0) - norm(0.5) > 0.1   # 0.5 and 1.0 stand apart from 0 and each other
    centres = torch.rand(8, 17) * 3
    centres[2] = float("nan")
    unk = torch.zeros(8, dtype=torch.bool)
    unk[5] = True
    plot_centroids(tmp_path / "c.png", centres, torch.arange(8) * 100, [f"AU{i:02d}" for i in range(17)],
                   [f"c{i}" for i in range(8)], top=4, unk=unk)
    assert (tmp_path / "c.png").stat().st_size > 5000


def test_embedding_figures(tmp_path):
    names = ["<unk>", "<start>", "<end>"] + [f"c{i}" for i in range(12)]
    dominant = ["-"] * 3 + [f"AU{1 + i % 3:02d}:2.00,AU12:1.00" for i in range(11)] + ["-"]
    runs = {4: (torch.randn(15, 4), list(np.geomspace(100, 1, 20))), 8: (torch.randn(15, 8), list(np.geomspace(90, 2, 20)))}
    embedding_figures(tmp_path, runs, names, dominant, hparams={"epochs": 20, "lr": 0.05})
    for name in ("glove_losses.png", "token_map_d4.png", "token_map_d8.png"):
        assert (tmp_path / name).stat().st_size > 5000, name
    assert {"embeddings/losses", "embeddings/map_d4", "embeddings/map_d8"} <= set(_tags(tmp_path / "tb" / "figures")["images"])
    assert "_hparams_/session_start_info" in _tags(tmp_path / "tb" / "d4")["hparams"]
    assert [dominant_label(a) for a in ("AU12:2.31,AU06:1.80", "-", "", "AU04_r:1.2")] == ["AU12", "none", "none", "AU04"]


def test_plain_progress_lines(monkeypatch, capsys):
    monkeypatch.setenv("FACEVOCAB_PROGRESS", "plain")
    bar = Progress(total=10, desc="work", unit="step", every=0.0)
    for _ in range(4):
        bar.update(1, loss="0.5")
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and lines[1].startswith("work: 2/10 step (20%)") and "ETA" in lines[1] and "loss=0.5" in lines[1]
    stopped = Progress(total=300, desc="k-means", every=1e9)
    stopped.update(25)
    stopped.close()                                        # stopped early: one final line, no percentage
    assert capsys.readouterr().err.startswith("k-means: 25 it (done, 300 at most)")
