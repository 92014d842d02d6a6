"""Frames for the paper-scale benchmarks: the generator with its states at the paper's published vocabulary.

    frames, offsets = generator_frames(5_292_819, seed=0)   # (N, 17) float32, (S+1,) int64; or None

`python synth.py vocab=DIR` puts one state at each centre of a vocabulary, with the centres' counts
as shares; with the published 1000 centres (../shared/auglove, written as a vocabulary directory by
tests/published.py, or any `vocab=` directory given) the corpus has the real geometry: the k-means
and co-occurrence benchmarks then time the distances and token statistics the paper's run met.
Simulated directly at 5 fps (the corpus rate; no CSVs), 25 videos of 4-12 s per subject as in
configs/paper/synth_pretrain.yaml, in `workers` processes, cached under runs/bench_cache/.
Returns None when no vocabulary is there: the benchmarks then fall back to their own frames.
"""
from __future__ import annotations

import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from data.synth.generate import load_synth_config, simulate_corpus  # noqa: E402
from utils.artifacts import load_npz  # noqa: E402
from tests.published import AUGLOVE, write_published_vocab  # noqa: E402

CACHE = REPO / "runs" / "bench_cache"
FRAMES_PER_SUBJECT = 25 * (12 - 4) / math.log(12 / 4) * 5.0   # videos x mean log-uniform seconds x fps


def vocab_dir(vocab: str | Path | None = None) -> Path | None:
    if vocab:
        return Path(vocab)
    if not AUGLOVE.is_dir():
        return None
    out = CACHE / "published_vocab"
    return out if (out / "centroids.pt").exists() else write_published_vocab(out)


def _config(n: int, seed: int, vocab: Path):
    return load_synth_config({"vocab": str(vocab), "seed": seed, "behaviour.fps": 5.0,
                              "pretrain.n_subjects": max(1, math.ceil(1.1 * n / FRAMES_PER_SUBJECT)),
                              "pretrain.videos_per_subject": 25.0, "pretrain.video_seconds_min": 4.0,
                              "pretrain.video_seconds_max": 12.0})


def _part(job):
    n, seed, vocab, lo, hi = job
    sim = simulate_corpus(_config(n, seed, vocab), subjects=range(lo, hi))
    return sim.frames, np.diff(sim.offsets)


def generator_frames(n: int, *, seed: int = 0, vocab: str | Path | None = None,
                     workers: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    vocab = vocab_dir(vocab)
    if vocab is None:
        return None
    cache = CACHE / f"synth_{Path(vocab).name}_{n}_{seed}.npz"
    if cache.exists():
        saved = load_npz(cache, "frame cache")
        return saved["frames"], saved["offsets"]
    subjects = _config(n, seed, vocab).pretrain.n_subjects
    cuts = np.linspace(0, subjects, max(1, workers) * 4 + 1).astype(int)
    jobs = [(n, seed, vocab, int(lo), int(hi)) for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        parts = list(pool.map(_part, jobs))
    frames = np.concatenate([f for f, _ in parts])
    lengths = np.concatenate([l for _, l in parts])
    if len(frames) < n:
        raise ValueError(f"the generator gave {len(frames)} frames, fewer than {n}")
    ends = np.cumsum(lengths)
    last = int(np.searchsorted(ends, n))                 # the video holding frame n-1: cut it there
    offsets = np.r_[0, ends[:last], n].astype(np.int64)
    frames = np.ascontiguousarray(frames[:n])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, frames=frames, offsets=offsets)
    return frames, offsets
