"""The realism report: its statistics against a direct computation, the comparisons, coverage, the command."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data.openface.corpus import FrameCorpus
from data.realism import (ANTI_R, TARGETS, FrameSet, check_targets, compare, frame_stats, load_frame_set,
                          run_lengths)
from realism import main as realism_main
from utils.config import ConfigError
from vocab.coverage import coverage

AUS = ["AU01", "AU02", "AU12"]


def tiny_corpus(seed=0):
    """3 sequences (7, 1, 12 frames), zeros and 2-decimal values, a marked gap at row 10."""
    rng = np.random.default_rng(seed)
    x = np.round(np.where(rng.random((20, 3)) < 0.4, 0.0, rng.uniform(0, 3, (20, 3))), 2)
    x[:, 1] = np.round(0.5 * x[:, 0] + rng.uniform(0, 0.5, 20), 2)   # correlated with AU01
    offsets = np.array([0, 7, 8, 20])
    gap = np.zeros(20, dtype=bool)
    gap[10] = True
    return FrameSet(frames=x, au_names=AUS, offsets=offsets, gap_before=gap)


def direct(fs: FrameSet, labels) -> dict:
    """The statistics by plain loops over frames and sequences."""
    x, n = fs.frames, len(fs.frames)
    neutral = sum(all(v < 0.5 for v in row) for row in x) / n
    active = sum(sum(v >= 1 for v in row) for row in x) / n
    diffs, pairs = [], []
    runs = []
    for s in range(len(fs.offsets) - 1):
        lo, hi = fs.offsets[s], fs.offsets[s + 1]
        run = 1
        for t in range(lo + 1, hi):
            if not fs.gap_before[t]:
                diffs.append(np.abs(x[t] - x[t - 1]))
                pairs.append((x[t - 1].sum(), x[t].sum()))
            if labels[t] == labels[t - 1]:
                run += 1
            else:
                runs.append(run)
                run = 1
        if hi > lo:
            runs.append(run)
    pairs = np.array(pairs)
    return {"neutral_fraction": neutral, "active_per_frame": active, "au_mean": x.mean(0),
            "au_ge_05": (x >= 0.5).mean(0), "au_ge_1": (x >= 1).mean(0), "au_zero": (x == 0).mean(0),
            "corr": np.corrcoef(x.T), "motion": np.mean(diffs, axis=0),
            "lag1": np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1], "run": np.mean(runs)}


def test_corpus_statistics_equal_direct_computation():
    fs = tiny_corpus()
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 0, 2, 2, 2, 1, 1, 1, 1, 0, 2, 2, 2, 2])
    got, want = frame_stats(fs, labels), direct(fs, labels)
    for key in ("neutral_fraction", "active_per_frame"):
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    for key in ("au_mean", "au_ge_05", "au_ge_1", "au_zero", "motion", "corr"):
        np.testing.assert_allclose(got[key], want[key], atol=1e-12, err_msg=key)
    assert got["lag1_autocorr"] == pytest.approx(want["lag1"], abs=1e-12)
    assert got["run_length"] == pytest.approx(want["run"], abs=1e-12)
    assert got["n_pairs"] == 6 + 0 + 11 - 1                 # steps within each sequence, less the gap
    for q, name in ((0.1, "q10"), (0.5, "q50"), (0.9, "q90")):
        np.testing.assert_allclose(got["au_quantiles"][name], np.quantile(fs.frames, q, axis=0, method="inverted_cdf"))
    iu = np.triu_indices(3, 1)
    assert got["n_anticorrelated"] == int(np.sum(want["corr"][iu] <= ANTI_R))
    best = np.argmax(want["corr"][iu])
    assert got["top_pairs"][0][:2] == [AUS[iu[0][best]], AUS[iu[1][best]]]


def test_weighted_centres_equal_repeated_frames():
    """Centres weighted by integer counts give the statistics of each centre repeated count times."""
    rng = np.random.default_rng(1)
    centres = np.round(rng.uniform(0, 2, (6, 3)), 3)
    counts = np.array([5, 1, 3, 2, 7, 1])
    weighted = frame_stats(FrameSet(frames=centres, au_names=AUS, weights=counts))
    repeated = np.repeat(centres, counts, axis=0)
    want = direct(FrameSet(frames=repeated, au_names=AUS, offsets=np.array([0, len(repeated)]),
                           gap_before=np.zeros(len(repeated), bool)), np.zeros(len(repeated)))
    for key in ("au_mean", "au_ge_05", "au_ge_1", "corr"):
        np.testing.assert_allclose(weighted[key], want[key], atol=1e-12, err_msg=key)
    assert weighted["neutral_fraction"] == pytest.approx(want["neutral_fraction"])
    np.testing.assert_allclose(weighted["au_quantiles"]["q25"], np.quantile(repeated, 0.25, axis=0, method="inverted_cdf"))
    assert "motion" not in weighted and weighted["weight_total"] == counts.sum()


def test_constant_au_has_zero_correlation():
    x = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 1.0], [0.0, 3.0, 3.0]])
    c = np.asarray(frame_stats(FrameSet(frames=x, au_names=AUS))["corr"])
    assert c[0, 1] == 0 and c[0, 0] == 1 and np.isfinite(c).all()


def test_run_lengths_stop_at_sequence_boundaries():
    assert run_lengths(np.array([1, 1, 1, 2, 2, 2]), np.array([0, 2, 6])).tolist() == [2, 1, 3]


def test_compare_figures():
    a, b = frame_stats(tiny_corpus(0)), frame_stats(tiny_corpus(3))
    c = compare(a, b)
    iu = np.triu_indices(3, 1)
    assert c["profile_corr"] == pytest.approx(np.corrcoef(a["au_mean"], b["au_mean"])[0, 1])
    assert c["corr_matrix_corr"] == pytest.approx(np.corrcoef(np.asarray(a["corr"])[iu], np.asarray(b["corr"])[iu])[0, 1])
    assert c["au_sum_ratio"] == pytest.approx(sum(a["au_mean"]) / sum(b["au_mean"]))
    assert c["motion_ratio"] == pytest.approx(np.mean(a["motion"]) / np.mean(b["motion"]))
    assert compare(a, a)["profile_corr"] == pytest.approx(1.0) and compare(a, a)["au_sum_ratio"] == 1.0
    with pytest.raises(ValueError, match="different AUs"):
        compare(a, {**b, "au_names": ["AU01", "AU02", "AU04"]})


def test_check_targets_bounds():
    base = {"neutral_fraction": [0.06, 0.03], "profile_corr": 0.9, "au_sum_ratio": 1.15, "corr_matrix_corr": 0.69}
    got = check_targets(base, {"motion_ratio": 0.8})
    assert all(met for _, met in got.values()) and set(got) == {"neutral_fraction", "profile_corr", "au_sum_ratio",
                                                                "corr_matrix_corr", "motion_ratio"}
    bad = check_targets({**base, "neutral_fraction": [0.061, 0.03], "au_sum_ratio": 0.84}, {"motion_ratio": 1.26})
    assert [k for k, (_, met) in bad.items() if not met] == ["neutral_fraction", "au_sum_ratio", "motion_ratio"]
    assert TARGETS["corr_matrix_corr_min"] == 0.69


def test_coverage_exact():
    a = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    b = np.array([[0.6, 0.0, 0.0], [0.0, 0.0, 4.0]])
    c = coverage(a, np.array([3.0, 1.0]), b, radius=1.0)
    assert c["covered"] == pytest.approx(0.75)
    assert c["mean_nearest"] == pytest.approx(0.75 * 0.6 + 0.25 * 2.4)
    assert c["worst"][0] == [pytest.approx(2.4), pytest.approx(0.25)]


def _save_corpus(path, fs: FrameSet):
    n = len(fs.frames)
    corpus = FrameCorpus(frames=torch.from_numpy(fs.frames.astype(np.float32)), timestamps=torch.zeros(n, dtype=torch.float64),
                         gap_before=torch.from_numpy(fs.gap_before), offsets=torch.from_numpy(fs.offsets),
                         sequence_video=torch.arange(len(fs.offsets) - 1), video_ids=[f"v{i}" for i in range(len(fs.offsets) - 1)],
                         meta={"au_names": list(fs.au_names), "fps": 5.0, "fingerprint": "test"})
    corpus.save(path)
    return path


def test_load_frame_set_leaves_out_centres_without_frames(tmp_path):
    centres = torch.tensor([[0.1, 0.2, 0.3], [float("nan")] * 3, [1.0, 1.0, 1.0], [2.0, 0.0, 0.0]])
    torch.save({"centroids": centres, "counts": torch.tensor([4, 9, 0, 2]), "au_names": AUS}, tmp_path / "centroids.pt")
    fs = load_frame_set(tmp_path)
    np.testing.assert_allclose(fs.frames, [[0.1, 0.2, 0.3], [2.0, 0.0, 0.0]], rtol=1e-6)
    assert fs.weights.tolist() == [4, 2]
    assert not fs.is_sequence
    with pytest.raises(FileNotFoundError, match="neither a corpus"):
        load_frame_set(tmp_path / "nothing")


def test_realism_command_writes_the_report(tmp_path):
    a = _save_corpus(tmp_path / "a", tiny_corpus(0))
    b = _save_corpus(tmp_path / "b", tiny_corpus(5))
    vocab = tmp_path / "v"
    vocab.mkdir()
    torch.save({"centroids": torch.tensor([[0.0, 0.0, 0.0], [2.0, 1.0, 1.0]]), "counts": torch.tensor([3, 1]),
                "au_names": AUS}, vocab / "centroids.pt")
    out = tmp_path / "rep"
    realism_main([f"sets=[{a},{b},{vocab}]", "names=[ours,real,published]", f"out={out}", "centres_k=3", "device=cpu"])
    report = json.loads((out / "realism.json").read_text())
    assert report["names"] == ["ours", "real", "published"] and report["label_centres"] == "published"
    labels = ((tiny_corpus(0).frames[:, None] - np.array([[0, 0, 0], [2, 1, 1]])[None]) ** 2).sum(-1).argmin(1)
    want = frame_stats(tiny_corpus(0), labels)
    assert report["stats"]["ours"]["au_mean"] == pytest.approx(want["au_mean"])
    assert report["stats"]["ours"]["run_length"] == pytest.approx(want["run_length"])
    assert set(report["comparisons"]) == {"ours vs real", "ours vs published"}
    assert 0 <= report["comparisons"]["ours vs published"]["coverage_by_ref"] <= 1
    md = (out / "realism.md").read_text()
    assert "| neutral fraction (all AUs < 0.5) |" in md and "ours vs published" in md
    for png in ("profile.png", "corr.png", "motion.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert list((out / "tb").glob("events.out.tfevents.*"))
    with pytest.raises(ConfigError, match="at least two"):
        realism_main([f"sets=[{a}]", f"out={tmp_path / 'x'}"])
    other = tmp_path / "w"
    other.mkdir()
    torch.save({"centroids": torch.zeros(1, 3), "counts": torch.tensor([1]), "au_names": ["AU04", "AU05", "AU06"]},
               other / "centroids.pt")
    with pytest.raises(ValueError, match="has AUs"):
        realism_main([f"sets=[{a},{other}]", f"out={tmp_path / 'y'}", "device=cpu"])
