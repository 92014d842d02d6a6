"""Plausible non-AU columns of an OpenFace file: head pose, gaze, landmarks, PDM parameters.

Nothing downstream reads these; they exist so synthetic files have the size, number formats and
rough values of real ones. A crude 68-point 3-D face (mm) is deformed by the AU intensities
(brows rise with AU01/AU02, the mouth opens with AU25/AU26, corners pull with AU12, lids close
with AU45), rotated and translated by a slowly drifting head pose, and projected with a pinhole
camera. Cheap: a few (n, 68, 3) array operations per video.
"""
from __future__ import annotations

import numpy as np

from data.openface.format import N_EYE_LMK, N_PDM
from data.synth.behaviour import AU, smooth_noise


def _ring(cx, cy, rx, ry, n, start=np.pi, z=0.0):
    th = start - np.arange(n) * 2 * np.pi / n
    return np.stack([cx + rx * np.cos(th), cy - ry * np.sin(th), np.full(n, z)], axis=1)


def _template() -> np.ndarray:  # (68, 3) mm, x right, y down, z away from the camera
    a = np.linspace(-0.47 * np.pi, 0.47 * np.pi, 17)
    jaw = np.stack([68 * np.sin(a), -10 + 85 * np.cos(a), 10 + 50 * np.sin(a) ** 2], axis=1)
    bx = np.linspace(-60, -15, 5)
    brow_l = np.stack([bx, -42 - 6 * np.sin(np.linspace(0.3, 2.8, 5)), np.full(5, -2.0)], axis=1)
    brow_r = brow_l[::-1] * [-1, 1, 1]
    nose = np.array([[0, -30, -5], [0, -18, -12], [0, -6, -20], [0, 6, -28]], dtype=float)
    nostrils = np.stack([np.arange(-14, 15, 7.0), [14, 16, 18, 16, 14], [-8, -12, -15, -12, -8]], axis=1)
    eyes = [_ring(cx, -25, 15, 5, 6, z=5.0) for cx in (-32, 32)]
    mouth = [_ring(0, 42, 25, 10, 12, z=-5.0), _ring(0, 42, 18, 4, 8, z=-4.0)]
    return np.concatenate([jaw, brow_l, brow_r, nose, nostrils, *eyes, *mouth])


def _au_basis() -> np.ndarray:  # (17, 68, 3) mm of landmark motion per unit of AU intensity
    b = np.zeros((len(AU), 68, 3))
    brow_in, brow_out = [19, 20, 21, 22, 23, 24], [17, 18, 25, 26]
    upper_lid, lower_lid = [37, 38, 43, 44], [40, 41, 46, 47]
    corners = [48, 54, 60, 64]
    upper_lip, lower_lip = [49, 50, 51, 52, 53, 61, 62, 63], [55, 56, 57, 58, 59, 65, 66, 67]
    b[AU["AU01"], brow_in, 1] = -2.5
    b[AU["AU02"], brow_out, 1] = -2.5
    b[AU["AU04"], brow_in + brow_out, 1] = 1.5
    b[AU["AU04"], [19, 20, 21], 0], b[AU["AU04"], [22, 23, 24], 0] = 1.5, -1.5
    b[AU["AU05"], upper_lid, 1] = -0.8
    b[AU["AU06"], lower_lid, 1] = b[AU["AU07"], lower_lid, 1] = -0.6
    b[AU["AU45"], upper_lid, 1] = 1.6
    b[AU["AU12"], [48, 60], 0], b[AU["AU12"], [54, 64], 0] = -1.8, 1.8
    b[AU["AU12"], corners, 1] = -1.5
    b[AU["AU15"], corners, 1] = 1.2
    b[AU["AU20"], [48, 60], 0], b[AU["AU20"], [54, 64], 0] = -1.5, 1.5
    b[AU["AU10"], upper_lip, 1] = -1.5
    b[AU["AU25"], lower_lip, 1], b[AU["AU25"], upper_lip, 1] = 2.0, -0.5
    b[AU["AU26"], lower_lip + [7, 8, 9], 1] = 3.0
    b[AU["AU17"], lower_lip + [7, 8, 9], 1] = -1.0
    return b


TEMPLATE, AU_BASIS = _template(), _au_basis()


def _rotations(r: np.ndarray) -> np.ndarray:  # (n, 3) Euler XYZ radians -> (n, 3, 3)
    cx, cy, cz = np.cos(r).T
    sx, sy, sz = np.sin(r).T
    return np.stack([
        np.stack([cy * cz, -cy * sz, sy], -1),
        np.stack([cx * sz + sx * sy * cz, cx * cz - sx * sy * sz, -sx * cy], -1),
        np.stack([sx * sz - cx * sy * cz, sx * cz + cx * sy * sz, cx * cy], -1)], axis=1)


def head_pose(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """(n, 6) pose_Tx, Ty, Tz (mm) and pose_Rx, Ry, Rz (rad), drifting slowly."""
    base = np.array([rng.normal(0, 40), rng.normal(15, 30), rng.uniform(350, 800),
                     rng.normal(0, 0.1), rng.normal(0, 0.15), rng.normal(0, 0.05)])
    scale = np.array([15, 10, 25, 0.08, 0.12, 0.04])
    return base + scale * smooth_noise(rng, n, 6, 1.5 * fps)


def gaze(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """(n, 8) gaze_0_xyz, gaze_1_xyz (unit vectors) and gaze_angle_x, gaze_angle_y (rad)."""
    ang = np.array([0.15, 0.1]) * smooth_noise(rng, n, 2, 0.2 * fps) + rng.normal(0, 0.1, 2)
    eyes = []
    for verge in (0.03, -0.03):
        ax, ay = ang[:, 0] + verge, ang[:, 1]
        eyes.append(np.stack([np.sin(ax) * np.cos(ay), np.sin(ay), -np.cos(ax) * np.cos(ay)], axis=1))
    mean = (eyes[0] + eyes[1]) / 2
    angles = np.stack([np.arctan2(mean[:, 0], -mean[:, 2]), np.arctan2(mean[:, 1], -mean[:, 2])], axis=1)
    return np.concatenate([eyes[0], eyes[1], angles], axis=1)


def full_blocks(rng: np.random.Generator, aus: np.ndarray, pose: np.ndarray, gz: np.ndarray,
                fps: float) -> dict[str, np.ndarray]:
    """The columns only the full layout has: eye_lmk (n, 280), landmarks (n, 340), pdm (n, 40)."""
    n = len(aus)
    fx, cx, cy = rng.uniform(700, 1100), 640.0, 360.0
    rot = _rotations(pose[:, 3:])                                        # (n, 3, 3)
    face = TEMPLATE + np.einsum("na,apc->npc", aus, AU_BASIS)           # (n, 68, 3) face frame
    face += 0.3 * rng.standard_normal(face.shape)                        # tracker jitter
    world = np.einsum("nij,npj->npi", rot, face) + pose[:, None, :3]    # camera frame, mm
    img = fx * world[..., :2] / world[..., 2:3] + [cx, cy]              # (n, 68, 2) pixels
    # eyes: 20 lid points and 8 iris points each; the iris follows the gaze, the lid the AU45 blink
    eye_pts = []
    for e, (lo, gvec) in enumerate(((36, gz[:, :3]), (42, gz[:, 3:6]))):
        centre = face[:, lo:lo + 6].mean(axis=1)                        # (n, 3)
        th = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        lid = np.stack([15 * np.cos(th), 5 * np.sin(th), np.zeros(20)], -1)[None].repeat(n, 0)
        lid[:, th > np.pi, 1] *= 1 - 0.18 * np.clip(aus[:, [AU["AU45"]]], 0, 5)  # upper lid closes
        ti = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        iris = np.stack([6 * np.cos(ti), 6 * np.sin(ti), np.zeros(8)], -1)[None] + (10 * gvec)[:, None]
        eye_pts.append(centre[:, None] + np.concatenate([iris, lid], axis=1))
    eye = np.einsum("nij,npj->npi", rot, np.concatenate(eye_pts, axis=1)) + pose[:, None, :3]
    eye_img = fx * eye[..., :2] / eye[..., 2:3] + [cx, cy]
    assert eye.shape[1] == N_EYE_LMK
    rigid = np.stack([fx / pose[:, 2], pose[:, 3], pose[:, 4], pose[:, 5],
                      img[..., 0].mean(1), img[..., 1].mean(1)], axis=1)
    nonrigid = (20.0 / (1 + np.arange(N_PDM))) * smooth_noise(rng, n, N_PDM, 0.5 * fps)
    nonrigid[:, 0] += 6.0 * aus[:, AU["AU26"]] + 3.0 * aus[:, AU["AU25"]]
    nonrigid[:, 1] -= 4.0 * aus[:, AU["AU12"]]
    per_axis = lambda a2, a3: np.concatenate([a2[..., 0], a2[..., 1], a3[..., 0], a3[..., 1], a3[..., 2]], 1)
    return {"eye_lmk": per_axis(eye_img, eye), "landmarks": per_axis(img, world),
            "pdm": np.concatenate([rigid, nonrigid], axis=1)}
