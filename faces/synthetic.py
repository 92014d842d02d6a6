"""Rendered people with per-frame AU truth: the embedded default of the face stage.

The AU sequences are the synthetic generator's own (data.synth.generate): person s is the
generator's `subject(cfg, table, dynamics, s)` of `kind=pretrain` with the same seed, and video v
of that person is its `video_signals(...)` with the tracker's dropouts switched off (a rendered face
has no tracking failures). So a rendered video and the OpenFace CSV that
`python synth.py kind=pretrain seed=S behaviour.low_conf_bursts_per_min=0 behaviour.failed_bursts_per_min=0`
writes for the same subject and video hold the same AU intensities (add
`behaviour.elicitation=E` for people rendered with `Variation(elicitation=E)`). The intensities that drive the
face are the truth; `faces.annotator` makes OpenFace-like noisy labels from them.

Getting a batch of rendered faces with per-frame AU truth (the API other stages build on):

    from faces.synthetic import render_faces
    batch = render_faces(n_subjects=4, per_subject=8, size=64, seed=0)      # stills, one pose each
    batch.images      # (32, 64, 64, 3) uint8 RGB
    batch.aus         # (32, 17) float64 intensities 0..5, AU_INTENSITY order (AU01 ... AU45)
    batch.subject     # (32,) int64 person index;  batch.landmarks (32, 68, 2) pixels
    video = render_video(seed=0, subject=3, video=0, n_frames=60, renderer=FaceRenderer(size=128))

Every subject, video and frame draws from its own seeded stream, so any subset renders the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from functools import lru_cache

from data.synth.behaviour import Subject
from data.synth.generate import build_behaviour, load_synth_config, subject as synth_subject, video_signals
from faces.identity import Identity, draw_identity, draw_scene, gaze_track, pose_track
from faces.render import FaceRenderer

STREAM = 1400    # keeps the renderer's own streams apart from the OpenFace generator's rng_for(seed, kind, ...)
STILLS_VIDEO = 9999   # the generator's video number whose frames the stills of a person sample


def rng(seed: int, purpose: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, STREAM, purpose, *key])


@dataclass
class Person:
    behaviour: Subject        # the generator's subject: traits, state preferences, tempo, gains
    identity: Identity        # how the person looks
    number: int               # subject index in the generator (kind=pretrain)
    seed: int
    fps: float
    elicitation: float = 0.0


@dataclass
class Variation:
    """How much scenes vary (the renderer's side of the config)."""
    yaw_deg: float = 20.0      # sd of head yaw; ~13 % of frames beyond 30 deg
    pitch_deg: float = 10.0
    roll_deg: float = 6.0
    glasses_p: float = 0.15
    hand_p: float = 0.15
    # added to each person's expressivity where it drives the face (data.synth.behaviour.make_subject):
    # 0 = the interviewees of the OpenFace corpus; DISFA's people watch emotive clips and web photos
    # catch people smiling, so the face stage renders them more expressive (configs/faces.yaml)
    elicitation: float = 0.0


@lru_cache(maxsize=8)
def behaviour_model(seed: int, fps: float, elicitation: float = 0.0):
    """The generator's config, state table and dynamics (its calibration file), tracker dropouts off."""
    cfg = load_synth_config({"kind": "pretrain", "seed": seed, "behaviour.fps": fps,
                             "behaviour.low_conf_bursts_per_min": 0.0, "behaviour.failed_bursts_per_min": 0.0,
                             "behaviour.elicitation": elicitation})
    table, dynamics = build_behaviour(cfg)
    return cfg, table, dynamics


def person(seed: int, subject: int, *, fps: float, variation: Variation = Variation()) -> Person:
    cfg, table, dynamics = behaviour_model(seed, float(fps), float(variation.elicitation))
    return Person(behaviour=synth_subject(cfg, table, dynamics, subject), number=subject, seed=seed, fps=float(fps),
                  identity=draw_identity(rng(seed, 2, subject), glasses_p=variation.glasses_p),
                  elicitation=float(variation.elicitation))


def au_track(who: Person, n: int, video: int) -> np.ndarray:
    """(n, 17) AU intensities of video `video` of this person: the generator's signals for it."""
    cfg, table, dynamics = behaviour_model(who.seed, who.fps, who.elicitation)
    sig = video_signals(cfg, table, dynamics, who.number, video, n, sub=who.behaviour)
    return np.asarray(sig.aus, dtype=np.float64)


@dataclass
class RenderedVideo:
    frames: np.ndarray        # (n, H, W, 3) uint8 RGB
    aus: np.ndarray           # (n, 17) truth
    landmarks: np.ndarray     # (n, 68, 2) pixels
    pose: np.ndarray          # (n, 6) pitch, yaw, roll (rad), dx, dy, scale
    fps: float


def render_video(*, seed: int, subject: int, video: int, n_frames: int, renderer: FaceRenderer,
                 fps: float = 30.0, variation: Variation = Variation(), frames: slice | None = None) -> RenderedVideo:
    """One video of one person; `frames` renders only a slice (same pixels as the full video)."""
    who = person(seed, subject, fps=fps, variation=variation)
    aus = au_track(who, n_frames, video)
    r = rng(seed, 4, subject, video)
    scene = draw_scene(r, hand_p=variation.hand_p)
    pose = pose_track(r, n_frames, fps, yaw_deg=variation.yaw_deg, pitch_deg=variation.pitch_deg,
                      roll_deg=variation.roll_deg)
    gaze = gaze_track(r, n_frames, fps)
    sel = np.arange(n_frames)[frames or slice(None)]
    times = sel / max(n_frames - 1, 1)
    imgs, marks = [], []
    for i in sel:   # per-frame noise stream: a slice renders exactly the frames of the whole video
        im, lm = renderer.render(who.identity, scene, aus[i:i + 1], pose[i:i + 1], gaze[i:i + 1],
                                 noise_rng=rng(seed, 5, subject, video, int(i)), times=times[sel == i])
        imgs.append(im[0])
        marks.append(lm[0])
    return RenderedVideo(frames=np.stack(imgs), aus=aus[sel], landmarks=np.stack(marks), pose=pose[sel], fps=fps)


@dataclass
class FaceBatch:
    images: np.ndarray                     # (N, H, W, 3) uint8
    aus: np.ndarray                        # (N, 17) float64 truth
    subject: np.ndarray                    # (N,) int64
    landmarks: np.ndarray                  # (N, 68, 2)
    pose: np.ndarray = field(default=None)  # (N, 6)


def render_stills(*, seed: int, subject: int, count: int, renderer: FaceRenderer, fps: float = 30.0,
                  variation: Variation = Variation(), video_seconds: float = 60.0) -> FaceBatch:
    """`count` photographs of one person: expressions sampled from one simulated video, an independent
    pose, light and background per photo, JPEG-compressed (the web images of noisy pretraining)."""
    who = person(seed, subject, fps=fps, variation=variation)
    n = max(int(video_seconds * fps), count)
    aus_all = au_track(who, n, STILLS_VIDEO)
    r = rng(seed, 7, subject)
    pick = np.sort(r.choice(n, size=count, replace=False))
    pose = pose_track(r, count, fps, yaw_deg=variation.yaw_deg, pitch_deg=variation.pitch_deg,
                      roll_deg=variation.roll_deg, still=True)
    gaze = gaze_track(r, count, fps, still=True)
    imgs, marks = [], []
    for k in range(count):
        scene = draw_scene(rng(seed, 8, subject, k), hand_p=variation.hand_p)
        im, lm = renderer.render(who.identity, scene, aus_all[pick[k]][None], pose[k:k + 1], gaze[k:k + 1],
                                 noise_rng=rng(seed, 9, subject, k), times=np.array([0.5]), jpeg=True)
        imgs.append(im[0])
        marks.append(lm[0])
    return FaceBatch(images=np.stack(imgs), aus=aus_all[pick], subject=np.full(count, subject, np.int64),
                     landmarks=np.stack(marks), pose=pose)


def render_faces(*, n_subjects: int, per_subject: int, size: int = 64, seed: int = 0, first_subject: int = 0,
                 supersample: int = 2, variation: Variation = Variation()) -> FaceBatch:
    """Stills of `n_subjects` people (ids first_subject...), `per_subject` each, concatenated."""
    renderer = FaceRenderer(size=size, supersample=supersample)
    parts = [render_stills(seed=seed, subject=s, count=per_subject, renderer=renderer, variation=variation)
             for s in range(first_subject, first_subject + n_subjects)]
    return FaceBatch(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("images", "aus", "subject",
                                                                               "landmarks", "pose")))


def expression_sample(*, seed: int, subjects: range, frames: int, fps: float = 30.0,
                      variation: Variation = Variation()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth without pixels: AU tracks (N, 17), subject (N,) and still-photo yaw (N,) of the people
    `subjects` (the same people and expression model as render_stills, whole videos of `frames`).
    Cheap (no rendering): what the simulated annotator is calibrated on."""
    aus, subj, yaw = [], [], []
    for s in subjects:
        who = person(seed, s, fps=fps, variation=variation)
        aus.append(au_track(who, frames, STILLS_VIDEO))
        yaw.append(pose_track(rng(seed, 10, s), frames, fps, yaw_deg=variation.yaw_deg, still=True)[:, 1])
        subj.append(np.full(frames, s, np.int64))
    return np.concatenate(aus), np.concatenate(subj), np.concatenate(yaw)
