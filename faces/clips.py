"""Rendered AU-labelled video clips for the per-frame AU detectors (Chu et al., GTLE-Net), and the
{-1, 0, +1} presence labels those papers train on.

    clips = render_clips(subjects=range(200_000, 200_012), videos=2, frames=60, size=64, fps=5, seed=0)
    clips.frames   (N, S, S, 3) uint8     every frame of every clip, clips concatenated
    clips.aus      (N, 17) float64        the intensities that drove the face (AU_INTENSITY order)
    clips.yaw      (N,) float64 radians   head yaw of each frame
    clips.offsets  (V+1,) int64           clip v is rows offsets[v]:offsets[v+1]
    clips.subject  (V,) int64             the person of each clip

`presence_labels` thresholds the truth (+1 at intensity >= `threshold`, FACS A-level = 1 as Chu et
al. take for BP4D) and gives 0, "lost track", where the head turns beyond `max_yaw_deg`, the role
label 0 has in Chu et al. The clips come from faces.synthetic.render_video (part 1's renderer), so
the expressions are the synthetic generator's. Saved and loaded as one .npz.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.openface.format import AU_INTENSITY
from faces.render import FaceRenderer
from faces.synthetic import Variation, render_video
from utils.artifacts import load_npz
from utils.io import atomic_path

# Chu et al.'s 12 BP4D AUs are 1 2 4 6 7 10 12 14 15 17 23 24; the renderer has no AU24 (lip pressor
# is not among OpenFace's 17), so the rendered set swaps it for AU25 (lips part).
CHU_AUS = ("AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU25")


@dataclass
class FaceClips:
    frames: np.ndarray
    aus: np.ndarray
    yaw: np.ndarray
    offsets: np.ndarray
    subject: np.ndarray

    @property
    def n_clips(self) -> int:
        return len(self.subject)

    def frame_subject(self) -> np.ndarray:
        """(N,) the person of every frame."""
        return np.repeat(self.subject, np.diff(self.offsets))

    def rows(self, clips) -> np.ndarray:
        """Frame rows of the given clip indices, in order."""
        return np.concatenate([np.arange(self.offsets[v], self.offsets[v + 1]) for v in clips]).astype(np.int64)

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, frames=self.frames, aus=self.aus, yaw=self.yaw, offsets=self.offsets, subject=self.subject)

    @classmethod
    def load(cls, path: str | Path) -> "FaceClips":
        z = load_npz(path, "rendered clips")
        return cls(**{k: z[k] for k in ("frames", "aus", "yaw", "offsets", "subject")})


def render_clips(*, subjects, videos: int, frames: int, size: int, fps: float, seed: int,
                 supersample: int = 2, elicitation: float = 0.0) -> FaceClips:
    """`elicitation`: how much more expressive than interviewees the people are (faces.synthetic.Variation)."""
    renderer = FaceRenderer(size=size, supersample=supersample)
    variation = Variation(elicitation=elicitation)
    parts, owners = [], []
    for s in subjects:
        for v in range(videos):
            parts.append(render_video(seed=seed, subject=int(s), video=v, n_frames=frames, renderer=renderer, fps=fps,
                                      variation=variation))
            owners.append(int(s))
    lengths = [len(p.frames) for p in parts]
    return FaceClips(frames=np.concatenate([p.frames for p in parts]), aus=np.concatenate([p.aus for p in parts]),
                     yaw=np.concatenate([p.pose[:, 1] for p in parts]),
                     offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                     subject=np.array(owners, dtype=np.int64))


def au_columns(au_names) -> list[int]:
    unknown = [a for a in au_names if a not in AU_INTENSITY]
    if unknown:
        raise ValueError(f"unknown AU name(s) {unknown}; the renderer's AUs are {list(AU_INTENSITY)}")
    return [AU_INTENSITY.index(a) for a in au_names]


def presence_labels(aus: np.ndarray, au_names, *, threshold: float = 1.0, yaw: np.ndarray | None = None,
                    max_yaw_deg: float = 40.0) -> np.ndarray:
    """(N, A) int8: +1 present (intensity >= threshold), -1 absent, 0 where |yaw| > max_yaw_deg."""
    present = aus[:, au_columns(au_names)] >= threshold
    labels = np.where(present, 1, -1).astype(np.int8)
    if yaw is not None:
        labels[np.abs(np.degrees(yaw)) > max_yaw_deg] = 0
    return labels
