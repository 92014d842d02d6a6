"""The rendered datasets of the face stage, and face crops from any DISFA/BP4D-layout folder.

pretraining set   `identities` people x `per_identity` stills (web-photo-like: one pose, light and
                  background each, JPEG), cropped by the face detector -> pretrain.npz
fine-tuning set   `subjects` DISFA-like videos at `fps`, written in the real layouts:
                  disfa/Videos_LeftCamera/LeftVideoSN001_comp.avi, disfa/ActionUnit_Labels/SN001/...,
                  bp4d/AU_OCC/F001_T1.csv, bp4d/AU_INT/..., bp4d/Sequences/F001/T1/0001.jpg (optional),
                  openface_truth/SN001.csv (the driving AUs as an OpenFace CSV)
`crops_from_layout` then reads the fine-tuning set back as a user's DISFA or BP4D would be read:
labels through faces.layouts, frames decoded from the video / image folder, faces detected and cropped.

Work is spread over `workers` processes; every subject renders from its own seeded streams, so
the output does not depend on `workers`, and each subject's files appear atomically (a rerun
renders only the missing ones).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from data.openface.format import AU_INTENSITY
from faces.crops import CropConfig, FaceCropper
from faces.layouts import BP4D_OCC_AUS, DISFA_AUS, au_name, read_labels, write_bp4d, write_disfa
from faces.openface_out import write_au_csv
from faces.render import FaceRenderer
from faces.synthetic import Variation, render_stills, render_video
from faces.video import read_frames, write_video
from utils.io import atomic_path
from utils.processes import ordered_map

FINETUNE_SUBJECT0 = 100_000     # fine-tuning people are never pretraining people


@dataclass
class RenderConfig:
    size: int = 128             # rendered frame side, 32..512 (the detector crops and resizes)
    supersample: int = 2        # drawn at size x supersample, area-averaged down (anti-aliasing)
    fps: float = 20.0           # DISFA's frame rate
    variation: Variation = field(default_factory=Variation)


@dataclass
class PretrainSetConfig:
    identities: int = 300
    per_identity: int = 10


@dataclass
class FinetuneSetConfig:
    subjects: int = 27          # DISFA's 27 people
    frames: int = 240           # per video (DISFA: 4,845)
    stride: int = 2             # crop every stride-th frame (neighbouring frames are near copies)
    bp4d_images: bool = True    # also write the BP4D layout's image folders
    layout: str = ""            # your own DISFA or BP4D folder: fine-tune and test on it instead of rendered videos
    # DISFA is filmed in a lab: a frontal camera, people seated watching emotive clips (so more
    # expressive than interviewees), nothing passing in front of the face. The stills of
    # pretraining keep the web photos' spread of render.variation
    variation: Variation = field(default_factory=lambda: Variation(yaw_deg=6.0, pitch_deg=4.0, roll_deg=3.0,
                                                                    hand_p=0.0, elicitation=3.0))


def disfa_id(k: int) -> str:
    return f"SN{k + 1:03d}"


def bp4d_id(k: int) -> str:
    return f"{'F' if k % 2 else 'M'}{k + 1:03d}"


def _renderer(r) -> FaceRenderer:
    return FaceRenderer(size=r.size, supersample=r.supersample)


def _variation(r) -> Variation:
    return r.variation if isinstance(r.variation, Variation) else Variation(**dict(r.variation))


def _pretrain_job(job) -> dict:
    seed, r, crop_cfg, subject, count = job
    cv2.setNumThreads(1)
    stills = render_stills(seed=seed, subject=subject, count=count, renderer=_renderer(r), fps=r.fps,
                           variation=_variation(r))
    crops, kept, report = FaceCropper(crop_cfg).crop_all(stills.images)
    return {"crops": crops, "aus": stills.aus[kept], "yaw": stills.pose[kept, 1], "subject": stills.subject[kept],
            "report": report, "raw": stills.images[:2]}


def build_pretrain_set(path: Path, *, seed: int, render: RenderConfig, sizes: PretrainSetConfig,
                       crop: CropConfig, workers: int = 1, progress=None) -> dict:
    """Render, crop and save the pretraining stills; returns the crop report."""
    jobs = [(seed, render, crop, s, sizes.per_identity) for s in range(sizes.identities)]
    parts = list(ordered_map(_pretrain_job, jobs, workers, progress=progress))
    totals = Counter()
    for p in parts:
        totals.update(p["report"]["dropped"])
    report = {"frames": sum(p["report"]["frames"] for p in parts), "kept": sum(p["report"]["kept"] for p in parts),
              "dropped": dict(totals)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, crops=np.concatenate([p["crops"] for p in parts]), aus=np.concatenate([p["aus"] for p in parts]),
                 yaw=np.concatenate([p["yaw"] for p in parts]), subject=np.concatenate([p["subject"] for p in parts]),
                 examples=np.concatenate([p["raw"] for p in parts[:8]]))
    return report


def _finetune_job(job) -> str:
    seed, r, sizes, k, root = job
    cv2.setNumThreads(1)
    root = Path(root)
    marker = root / "openface_truth" / f"{disfa_id(k)}.csv"
    if marker.exists():        # written last: this subject is complete
        return disfa_id(k)
    v = render_video(seed=seed, subject=FINETUNE_SUBJECT0 + k, video=0, n_frames=sizes.frames,
                     renderer=_renderer(r), fps=r.fps, variation=_variation(sizes))
    col = {au: v.aus[:, AU_INTENSITY.index(au_name(au))] for au in range(1, 46) if au_name(au) in AU_INTENSITY}
    write_video(root / "disfa" / "Videos_LeftCamera" / f"LeftVideo{disfa_id(k)}_comp.avi", v.frames, fps=r.fps)
    write_disfa(root / "disfa", disfa_id(k), np.stack([col[au] for au in DISFA_AUS], axis=1))
    write_bp4d(root / "bp4d", bp4d_id(k), "T1", {au: col[au] for au in BP4D_OCC_AUS if au in col})
    if sizes.bp4d_images:
        folder = root / "bp4d" / "Sequences" / bp4d_id(k) / "T1"
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(v.frames):
            cv2.imwrite(str(folder / f"{i + 1:04d}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    write_au_csv(marker, v.aus, (v.aus >= 1.0).astype(float), np.ones(len(v.aus), bool), fps=r.fps)
    return disfa_id(k)


def build_finetune_set(root: Path, *, seed: int, render: RenderConfig, sizes: FinetuneSetConfig,
                       workers: int = 1, progress=None) -> list[str]:
    jobs = [(seed, render, sizes, k, str(root)) for k in range(sizes.subjects)]
    return list(ordered_map(_finetune_job, jobs, workers, progress=progress))


def _crop_video(job) -> dict:
    video, crop_cfg, stride = job
    cv2.setNumThreads(1)
    cropper = FaceCropper(crop_cfg)
    want = {int(i) for i in range(0, len(video.frames), stride)}
    crops, rows, reasons = [], [], Counter()
    seen = 0
    if video.source is not None:
        for i, frame in enumerate(read_frames(video.source)):
            seen = i + 1
            if i not in want:
                continue
            crop, why = cropper.crop(frame)
            if crop is None:
                reasons[why] += 1
            else:
                crops.append(crop)
                rows.append(i)
    reasons["no_video_frame"] += sum(1 for i in want if i >= seen)
    shape = (0, crop_cfg.size, crop_cfg.size) + (() if crop_cfg.grayscale else (3,))
    return {"crops": np.stack(crops) if crops else np.zeros(shape, np.uint8), "rows": np.asarray(rows, np.int64),
            "report": {"frames": len(want), "kept": len(rows), "dropped": {k: v for k, v in reasons.items() if v}}}


def crops_from_layout(root: Path, *, crop: CropConfig, stride: int = 1, workers: int = 1, progress=None) -> dict:
    """Face crops and labels of every labelled frame of a DISFA/BP4D-layout folder (every stride-th).

    Returns crops (K, S, S) uint8, occurrence (K, A) float32 (NaN unlabelled), intensity (K, A),
    video (K,) index into video_ids, subject (K,) index into subjects, frame (K,) as the label file
    numbers it, row (K,) position in the label file (= decoded frame index), au_names, report."""
    videos = read_labels(root)
    if not videos:
        raise FileNotFoundError(f"{root}: the layout holds no labelled videos")
    parts = list(ordered_map(_crop_video, [(v, crop, stride) for v in videos], workers, progress=progress))
    subjects = sorted({v.subject for v in videos})
    out = {k: [] for k in ("crops", "occurrence", "intensity", "video", "subject", "frame", "row")}
    reports = {}
    for j, (v, p) in enumerate(zip(videos, parts)):
        rows = p["rows"]
        out["crops"].append(p["crops"])
        out["occurrence"].append(v.occurrence[rows])
        out["intensity"].append(v.intensity[rows])
        out["video"].append(np.full(len(rows), j))
        out["subject"].append(np.full(len(rows), subjects.index(v.subject)))
        out["frame"].append(v.frames[rows])
        out["row"].append(rows)
        reports[v.video_id] = {**p["report"], "source": str(v.source) if v.source else None}
    arrays = {k: np.concatenate(vs) for k, vs in out.items()}
    totals = Counter()
    for r in reports.values():
        totals.update(r["dropped"])
    report = {"frames": sum(r["frames"] for r in reports.values()), "kept": sum(r["kept"] for r in reports.values()),
              "dropped": dict(totals), "videos": reports}
    return {**arrays, "video_ids": [v.video_id for v in videos], "subjects": subjects,
            "au_names": list(videos[0].au_names), "report": report}
