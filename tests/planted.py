"""Frame corpora with planted clusters, built in memory for the clustering and token tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data.openface.corpus import FrameCorpus

AU_NAMES = ["AU01_r", "AU02_r", "AU04_r", "AU05_r", "AU06_r", "AU07_r", "AU09_r", "AU10_r", "AU12_r",
            "AU14_r", "AU15_r", "AU17_r", "AU20_r", "AU23_r", "AU25_r", "AU26_r", "AU45_r"]


def planted_frames(*, n: int, k: int, std: float = 0.15, seed: int = 0, dim: int = 17) -> tuple[np.ndarray, np.ndarray]:
    """n frames around k well-separated centres in [0, 5]^dim -> frames (n, dim) f32, truth (n,)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 5, (k, dim))
    truth = rng.integers(k, size=n)
    frames = centres[truth] + rng.normal(0, std, (n, dim))
    return frames.astype(np.float32), truth


def make_corpus(frames: np.ndarray, *, n_sequences: int, seed: int = 0, prefix: str = "s",
                offsets: list[int] | None = None) -> FrameCorpus:
    """Cut frames into n_sequences videos of random lengths (some may be empty), or at `offsets`."""
    rng = np.random.default_rng(seed)
    n = len(frames)
    if offsets is None:
        offsets = np.concatenate([[0], np.sort(rng.integers(0, n + 1, n_sequences - 1)), [n]])
    offsets = np.asarray(offsets, dtype=np.int64)
    return FrameCorpus(frames=torch.from_numpy(frames), timestamps=torch.zeros(n, dtype=torch.float64),
                       gap_before=torch.zeros(n, dtype=torch.bool), offsets=torch.from_numpy(offsets),
                       sequence_video=torch.arange(n_sequences),
                       video_ids=[f"{prefix}{i // 4:03d}/v{i:04d}" for i in range(n_sequences)],
                       meta={"au_names": AU_NAMES[:frames.shape[1]], "fps": 5.0,
                             "fingerprint": FrameCorpus.compute_fingerprint(frames, offsets)})


def save_planted_corpus(path: str | Path, *, n: int = 6000, k: int = 12, n_sequences: int = 40,
                        seed: int = 0, std: float = 0.15) -> tuple[FrameCorpus, np.ndarray]:
    frames, truth = planted_frames(n=n, k=k, std=std, seed=seed)
    corpus = make_corpus(frames, n_sequences=n_sequences, seed=seed)
    corpus.save(path)
    return corpus, truth
