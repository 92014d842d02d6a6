"""Tiny train.py inputs built directly (no synth/ingest/cluster/embed): a frame corpus, tokens.pt,
embeddings_d{d}.pt and labels.csv in the formats of ARCHITECTURE.md, with a learnable signal:
each subject's severity raises AU04 and lowers AU12, and every segment of that subject shows it.
Used by the tests and by bench/bench_train.py when no real pipeline output is given.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from data.openface.corpus import FrameCorpus
from utils.io import fingerprint, save_torch

AU_NAMES = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15",
            "AU17", "AU20", "AU23", "AU25", "AU26", "AU45"]
TASK_A = ["conceptual_disorganisation", "flow_of_conversation", "hallucinations", "suspiciousness", "delusions"]


def make_task(root: str | Path, *, kind: str = "task_a", subjects: int = 12, videos_per_subject: int = 4,
              frames: tuple[int, int] = (20, 60), k: int = 16, dims: tuple[int, ...] = (4,), seed: int = 0) -> dict:
    """Write corpus/, tokens/, embed/ and labels.csv under root; returns their paths."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    severity = rng.uniform(0, 1, subjects)                       # (subjects,) latent
    seqs, ids, rows = [], [], []
    for s in range(subjects):
        for v in range(videos_per_subject):
            n = int(rng.integers(frames[0], frames[1] + 1))
            x = np.clip(rng.gamma(1.0, 0.4, (n, len(AU_NAMES))), 0, 5)
            x[:, 2] += 2.5 * severity[s] * (rng.random(n) < 0.6)   # AU04 frowns with severity
            x[:, 8] += 2.5 * (1 - severity[s]) * (rng.random(n) < 0.6)  # AU12 smiles without
            seqs.append(np.clip(x, 0, 5).astype(np.float32))
            vid = f"s{s:03d}/v{v:02d}"
            ids.append(vid)
            if kind == "task_a":
                targets = [float(np.clip(np.round(1 + 6 * severity[s] + rng.normal(0, 0.5)), 1, 7)) for _ in TASK_A]
                rows.append([vid, f"s{s:03d}", "all", *targets])
            else:  # AVEC 2019's proportions: 163 / 56 / 56
                split = "train" if s < subjects * 163 / 275 else ("validation" if s < subjects * 219 / 275 else "test")
                rows.append([vid, f"s{s:03d}", split, float(np.clip(np.round(24 * severity[s]), 0, 24))])
    lengths = np.array([len(x) for x in seqs])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    allframes = np.concatenate(seqs)
    timestamps = np.concatenate([np.arange(n) / 5.0 for n in lengths])
    corpus = FrameCorpus(frames=torch.from_numpy(allframes), timestamps=torch.from_numpy(timestamps),
                         gap_before=torch.zeros(len(allframes), dtype=torch.bool), offsets=torch.from_numpy(offsets),
                         sequence_video=torch.arange(len(seqs)), video_ids=ids,
                         meta={"au_names": AU_NAMES, "fps": 5.0, "src": "tiny",
                               "fingerprint": FrameCorpus.compute_fingerprint(allframes, offsets)})
    corpus.save(root / "corpus")
    # tokens: nearest of k random centres, ids shifted by the 3 specials, <start>/<end> around each
    centres = allframes[rng.choice(len(allframes), k, replace=False)]
    frames_t, centres_t = torch.from_numpy(allframes), torch.from_numpy(centres)
    nearest = torch.cat([torch.cdist(frames_t[i:i + 100_000], centres_t).argmin(1)
                         for i in range(0, len(allframes), 100_000)]).numpy() + 3
    toks, tok_offsets = [], [0]
    for i in range(len(seqs)):
        toks += [1, *nearest[offsets[i]:offsets[i + 1]].tolist(), 2]
        tok_offsets.append(len(toks))
    vocab_fp = fingerprint(centres)
    save_torch({"tokens": torch.tensor(toks), "offsets": torch.tensor(tok_offsets), "video_ids": ids,
                "fingerprint": vocab_fp, "corpus_fingerprint": corpus.fingerprint, "vocab_size": k + 3,
                "specials": {"<unk>": 0, "<start>": 1, "<end>": 2}}, root / "tokens" / "tokens.pt")
    for d in dims:
        W, Wt = (torch.from_numpy(rng.normal(0, 0.3, (k + 3, d))).float() for _ in range(2))
        save_torch({"W": W, "W_tilde": Wt, "b": torch.zeros(k + 3), "b_tilde": torch.zeros(k + 3),
                    "tokens": ["<unk>", "<start>", "<end>"] + [f"c{i}" for i in range(k)], "fingerprint": vocab_fp},
                   root / "embed" / f"embeddings_d{d}.pt")
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video_id", "subject", "split", *(TASK_A if kind == "task_a" else ["phq8"])])
        writer.writerows(rows)
    return {"corpus": str(root / "corpus"), "tokens": str(root / "tokens"), "embeddings": str(root / "embed"),
            "labels": str(root / "labels.csv")}


def task_overrides(task: str, paths: dict) -> list[str]:
    return [f"{task}.{key}={value}" for key, value in paths.items()]
