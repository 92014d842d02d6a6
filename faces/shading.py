"""Lighting of the rendered face: a height field over the face frame, Lambert shading, skin texture.

The face surface is z = depth(x, y) in mm (z away from the camera): a rounded head, the nose ridge
and tip, the brow ridge, eye sockets, cheeks (raised and rounded by AU06, and a little by AU12),
lips and chin. Shading is computed on a coarse canonical grid over the face frame and warped into
the image with the affine that best maps the face plane onto the projected landmarks, so it costs
a few thousand pixels per frame whatever the output size.
"""
from __future__ import annotations

import cv2
import numpy as np

GRID_X = np.linspace(-95.0, 95.0, 96)      # mm, canonical grid columns
GRID_Y = np.linspace(-135.0, 105.0, 120)   # mm, rows
_GX, _GY = np.meshgrid(GRID_X, GRID_Y)


def _bump(x, y, cx, cy, sx, sy):
    return np.exp(-((x - cx) / sx) ** 2 - ((y - cy) / sy) ** 2)


def depth(x: np.ndarray, y: np.ndarray, cheek: float = 0.0) -> np.ndarray:
    """Surface depth (mm, away from the camera) at face-frame (x, y); cheek in [0, 1] raises the cheeks."""
    z = 36 * (x / 70) ** 4 + 0.006 * x ** 2 + 0.0015 * y ** 2
    t = np.clip((y + 32) / 38, 0, 1)
    fall = np.exp(-np.maximum(y - 6, 0) ** 2 / 20)
    z = z - 26 * t * fall * np.exp(-(x / (4 + 6 * t)) ** 2)                      # nose ridge and tip
    z = z - 4 * np.exp(-((y + 38) / 7) ** 2) * np.exp(-(x / 45) ** 4)             # brow ridge
    z = z + 5 * (_bump(x, y, -32, -25, 12, 9) + _bump(x, y, 32, -25, 12, 9))      # eye sockets
    lift = (6 + 4 * cheek)
    z = z - lift * (_bump(x, y, -38, 12 - 7 * cheek, 18, 18) + _bump(x, y, 38, 12 - 7 * cheek, 18, 18))
    z = z - 3 * _bump(x, y, 0, 42, 22, 7) - 4 * _bump(x, y, 0, 64, 14, 8)         # lips, chin
    return z


def _normals(cheek: float) -> np.ndarray:  # (GY, GX, 3) unit normals facing the camera
    z = depth(_GX, _GY, cheek)
    dzdy, dzdx = np.gradient(z, GRID_Y, GRID_X)
    n = np.stack([dzdx, dzdy, -np.ones_like(z)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


_NORMAL_CACHE: dict[int, np.ndarray] = {}


def normals(cheek: float) -> np.ndarray:
    """Normals for a cheek lift quantised to 1/20 (the cue is smooth; caching makes it free)."""
    key = int(round(float(np.clip(cheek, 0, 1)) * 20))
    if key not in _NORMAL_CACHE:
        _NORMAL_CACHE[key] = _normals(key / 20)
    return _NORMAL_CACHE[key]


def skin_texture(seed: int) -> np.ndarray:  # (GY, GX) float32 multiplicative detail around 1
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.standard_normal((len(GRID_Y), len(GRID_X))).astype(np.float32), (0, 0), 1.2)
    return 1.0 + 0.03 * tex / (tex.std() + 1e-6)


def shade_map(rot: np.ndarray, light: np.ndarray, ambient: float, cheek: float) -> np.ndarray:
    """(GY, GX) float32 brightness: ambient + diffuse Lambert of the rotated surface."""
    n_cam = normals(cheek) @ rot.T
    lambert = np.clip(n_cam @ light, 0.0, 1.0)
    return (ambient + (1.0 - ambient) * 1.15 * lambert).astype(np.float32)


def grid_to_image(face_xy: np.ndarray, image_xy: np.ndarray) -> np.ndarray:
    """(2, 3) affine from canonical grid (col, row) to image pixels, least squares over landmarks."""
    a = np.concatenate([face_xy, np.ones((len(face_xy), 1))], axis=1)    # (P, 3)
    face_to_img, *_ = np.linalg.lstsq(a, image_xy, rcond=None)             # (3, 2)
    dx, dy = GRID_X[1] - GRID_X[0], GRID_Y[1] - GRID_Y[0]
    grid_to_face = np.array([[dx, 0, GRID_X[0]], [0, dy, GRID_Y[0]], [0, 0, 1]])
    return (face_to_img.T @ grid_to_face).astype(np.float64)             # (2, 3)
