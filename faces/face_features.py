"""The "LSTM + face features" row of Table II: the synthetic task's videos rendered as faces from the
AU intensities of their own frame corpus, embedded frame by frame by a trained face network, and
written as a frame corpus of embeddings that the one sequence dataloader reads like AU frames.

    corpus = FrameCorpus.load("runs/demo/corpus/task_b")        # the AU frames the LSTM + AU row reads
    feats = face_feature_corpus(corpus, encoder.embed, size=64, max_len=500, stride=6, seed=0)
    feats.save("runs/demo/face_features/task_b")                 # frames (n, 16): one embedding per frame

Only the frames the task's sequence options read are rendered: per sequence the last
max_len * stride frames, every stride-th (train.yaml's task_b: 500 and 6, the released code's crop),
and the corpus is written with exactly those, so the row reads it whole (`bilstm_face` sets
full_sequence) and sees the same time steps as LSTM + AU. Each video is a new person (identity,
scene, head-pose drift, gaze), drawn from seeded streams kept apart from the other rendered sets.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from data.openface.corpus import FrameCorpus
from faces.identity import draw_identity, draw_scene, gaze_track, pose_track
from faces.render import FaceRenderer

STREAM = 1515    # seeds apart from faces.synthetic's streams


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, STREAM, *key])


def kept_rows(offsets: np.ndarray, *, max_len: int | None, stride: int) -> list[np.ndarray]:
    """Per sequence, the corpus rows a SequenceDataset with crop="last" reads (absolute row numbers)."""
    rows = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        start = a if max_len is None else max(a, b - max_len * stride)
        rows.append(np.arange(start, b, stride))
    return rows


def render_sequence_faces(aus: np.ndarray, rows: np.ndarray, *, video: int, n_total: int, fps: float,
                          renderer: FaceRenderer, seed: int) -> np.ndarray:
    """Faces (len(rows), S, S, 3) uint8 of one video's frames `rows` (indices into its n_total frames),
    driven by aus (len(rows), 17). Pose and gaze drift over the whole video, sampled at `rows`."""
    r = _rng(seed, video)
    identity, scene = draw_identity(r), draw_scene(r)
    pose, gaze = pose_track(r, n_total, fps)[rows], gaze_track(r, n_total, fps)[rows]
    frames, _ = renderer.render(identity, scene, aus, pose, gaze, noise_rng=_rng(seed, video, 1),
                                times=rows / max(n_total - 1, 1))
    return frames


@torch.no_grad()
def face_feature_corpus(corpus: FrameCorpus, embed: Callable[[torch.Tensor], torch.Tensor], *, size: int,
                        max_len: int | None, stride: int, seed: int, device="cpu", supersample: int = 2,
                        log=print) -> FrameCorpus:
    """A frame corpus of per-frame face embeddings for the corpus's sequences (cropped and strided)."""
    renderer = FaceRenderer(size=size, supersample=supersample)
    offsets = corpus.offsets.cpu().numpy()
    frames_au = corpus.frames.cpu().numpy().astype(np.float64)
    fps = float(corpus.meta.get("fps", 5.0))
    out, new_offsets = [], [0]
    per_seq = kept_rows(offsets, max_len=max_len, stride=stride)
    for s, rows in enumerate(per_seq):
        a = int(offsets[s])
        local = rows - a
        faces = render_sequence_faces(np.clip(frames_au[rows], 0, 5), local, video=int(corpus.sequence_video[s]),
                                      n_total=int(offsets[s + 1] - a), fps=fps, renderer=renderer, seed=seed)
        x = torch.from_numpy(faces).to(device).permute(0, 3, 1, 2).float().div_(255)
        out.append(embed(x).float().cpu())
        new_offsets.append(new_offsets[-1] + len(rows))
        if log and (s + 1) % 50 == 0:
            log(f"    face features: {s + 1}/{len(per_seq)} videos")
    feats = torch.cat(out)                                                        # (n, d)
    keep = torch.from_numpy(np.concatenate(per_seq))
    offsets_t = torch.tensor(new_offsets, dtype=torch.int64)
    meta = dict(corpus.meta, au_names=[f"face{j}" for j in range(feats.shape[1])], source_corpus=corpus.fingerprint,
                face_features={"size": size, "max_len": max_len, "stride": stride, "seed": seed},
                fingerprint=FrameCorpus.compute_fingerprint(feats.numpy(), offsets_t.numpy()))
    return FrameCorpus(frames=feats, timestamps=corpus.timestamps.cpu()[keep].double(), gap_before=corpus.gap_before.cpu()[keep].bool(),
                       offsets=offsets_t, sequence_video=corpus.sequence_video.cpu().clone(),
                       video_ids=list(corpus.video_ids), meta=meta)
