"""What varies between rendered people and between their videos, drawn from seeded streams.

An `Identity` is one person: face proportions (landmark offsets), skin, hair and lip colours, hair
line, forehead height, brow thickness, permanent lines (which FACS would not score), glasses.
A `Scene` is one video: lighting (direction, ambient, colour cast), background, blur, sensor
noise, compression quality and a hand that may pass in front of the face. `pose_track` drifts the
head (pitch, yaw, roll, position, scale) slowly; its spread puts a share of frames beyond 30 deg.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.synth.behaviour import smooth_noise
from faces.landmarks import identity_offsets

SKIN_LIGHT, SKIN_DARK = np.array([0.96, 0.80, 0.69]), np.array([0.36, 0.23, 0.16])
HAIR = np.array([[0.07, 0.06, 0.05], [0.25, 0.16, 0.09], [0.50, 0.36, 0.20], [0.78, 0.66, 0.45],
                 [0.62, 0.62, 0.62], [0.50, 0.22, 0.10]])
HAIR_P = np.array([0.35, 0.3, 0.12, 0.1, 0.08, 0.05])
IRIS = np.array([[0.25, 0.15, 0.08], [0.12, 0.08, 0.05], [0.30, 0.45, 0.62], [0.35, 0.45, 0.25]])


@dataclass
class Identity:
    offsets: np.ndarray       # (68, 3) mm, landmark deviation from the template
    skin: np.ndarray          # (3,) RGB in [0, 1]
    hair: np.ndarray          # (3,)
    lips: np.ndarray          # (3,)
    iris: np.ndarray          # (3,)
    forehead_mm: float        # brow line to top of the forehead arc
    hairline_mm: float        # brow line to hair line (> forehead_mm: receding / bald)
    hair_volume: float        # hair silhouette beyond the skull, mm
    brow_mm: float            # brow thickness
    crease: float             # depth of expression lines when an AU acts (0..1, grows with age)
    permanent: np.ndarray     # (3,) unscored permanent lines: forehead, nasolabial, crow's feet
    texture_seed: int
    glasses: bool


def draw_identity(rng: np.random.Generator, *, glasses_p: float = 0.15) -> Identity:
    tone = rng.beta(1.3, 1.3)
    skin = SKIN_LIGHT + tone * (SKIN_DARK - SKIN_LIGHT) + rng.normal(0, 0.02, 3)
    hair = HAIR[rng.choice(len(HAIR), p=HAIR_P)] * np.exp(rng.normal(0, 0.1))
    age = rng.beta(2, 3)
    return Identity(
        offsets=identity_offsets(rng), skin=np.clip(skin, 0, 1), hair=np.clip(hair, 0, 1),
        lips=np.clip(skin * [0.82, 0.55, 0.55] + rng.normal(0, 0.02, 3), 0, 1),
        iris=IRIS[rng.integers(len(IRIS))], forehead_mm=float(rng.uniform(62, 75)),
        hairline_mm=float(rng.uniform(45, 62) if rng.random() > 0.12 else rng.uniform(70, 95)),
        hair_volume=float(rng.uniform(4, 22)), brow_mm=float(rng.uniform(2.5, 5.0)),
        crease=float(0.55 + 0.45 * age), permanent=rng.uniform(0, 0.35, 3) * age,
        texture_seed=int(rng.integers(2**31)), glasses=bool(rng.random() < glasses_p))


@dataclass
class Scene:
    light: np.ndarray         # (3,) unit vector from the face towards the light
    ambient: float
    cast: np.ndarray          # (3,) RGB gain
    background: np.ndarray    # (2, 3) gradient colours
    blob_seed: int
    blur_px: float            # Gaussian sigma at output resolution
    noise: float              # sensor noise sd (0..1 scale)
    jpeg_quality: int         # for still images; videos get their codec's compression
    hand: np.ndarray          # (4,) start, stop (fraction of the video), x, y of a passing hand; empty: none


def draw_scene(rng: np.random.Generator, *, hand_p: float = 0.15) -> Scene:
    az, el = np.radians(rng.uniform(-60, 60)), np.radians(rng.uniform(-10, 50))
    light = np.array([np.sin(az) * np.cos(el), -np.sin(el), -np.cos(az) * np.cos(el)])
    hand = np.array([])
    if rng.random() < hand_p:
        start = rng.uniform(0, 0.7)
        hand = np.array([start, start + rng.uniform(0.1, 0.3), rng.uniform(-0.3, 0.3), rng.uniform(0.15, 0.4)])
    return Scene(light=light, ambient=float(rng.uniform(0.3, 0.55)),
                 cast=np.exp(rng.normal(0, 0.07, 3)), background=rng.uniform(0.1, 0.9, (2, 3)),
                 blob_seed=int(rng.integers(2**31)), blur_px=float(rng.uniform(0.0, 0.9)),
                 noise=float(rng.uniform(0.004, 0.025)), jpeg_quality=int(rng.integers(35, 95)), hand=hand)


def pose_track(rng: np.random.Generator, n: int, fps: float, *, yaw_deg: float = 20.0,
               pitch_deg: float = 10.0, roll_deg: float = 6.0, still: bool = False) -> np.ndarray:
    """(n, 6) pitch, yaw, roll (rad), dx, dy (frame fractions), scale. `still`: one independent
    pose per frame (photographs) instead of a slow drift (video)."""
    spread = np.array([np.radians(pitch_deg), np.radians(yaw_deg), np.radians(roll_deg), 0.03, 0.03, 0.07])
    if still:
        z = rng.standard_normal((n, 6))
    else:   # half the variance is the video's mean pose, half a drift with a ~2 s time scale
        z = (rng.standard_normal(6) + smooth_noise(rng, n, 6, 2.0 * fps)) / np.sqrt(2.0)
    pose = z * spread
    pose[:, :3] = np.clip(pose[:, :3], -np.radians(60), np.radians(60))
    pose[:, 5] = np.exp(pose[:, 5])
    return pose


def gaze_track(rng: np.random.Generator, n: int, fps: float, *, still: bool = False) -> np.ndarray:
    """(n, 2) iris offset as a fraction of its range, x right, y down."""
    z = rng.standard_normal((n, 2)) if still else smooth_noise(rng, n, 2, 0.3 * fps)
    return np.clip(0.35 * z, -1, 1)
