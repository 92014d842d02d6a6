"""The 3-D face the renderer draws: 68 landmarks (iBUG order), an AU basis, identity shape, head pose.

Builds on data/synth/face.py: its template and AU basis are the starting point; this module adds
the three AUs that basis leaves still (AU09 nose wrinkler, AU14 dimpler, AU23 lip tightener) and
makes AU45 close the lids fully at intensity ~3, where OpenFace's blink intensities peak.
Coordinates are millimetres in the face frame: x right, y down, z away from the camera.

    points = face_points(identity_offsets, aus)     # (N, 68, 3): rest template + identity + aus @ basis
    pixels = project(points, pose, size=128)        # (N, 68, 2) image coordinates

The AU displacement is linear and identity-independent, so the landmarks an AU moves are exactly
the nonzero rows of its basis slice (tests/test_faces_render.py checks this per AU).
"""
from __future__ import annotations

import numpy as np

from data.openface.format import AU_INTENSITY
from data.synth.face import AU_BASIS, TEMPLATE

AU = {name: i for i, name in enumerate(AU_INTENSITY)}

# landmark groups (iBUG 68): used by the basis, the renderer and the tests
JAW, BROW_L, BROW_R = list(range(0, 17)), list(range(17, 22)), list(range(22, 27))
NOSE_BRIDGE, NOSTRILS = list(range(27, 31)), list(range(31, 36))
EYE_L, EYE_R = list(range(36, 42)), list(range(42, 48))
MOUTH_OUT, MOUTH_IN = list(range(48, 60)), list(range(60, 68))
UPPER_LID, LOWER_LID = [37, 38, 43, 44], [40, 41, 46, 47]
UPPER_LIP_OUT, LOWER_LIP_OUT = [49, 50, 51, 52, 53], [55, 56, 57, 58, 59]
CORNERS = [48, 54, 60, 64]


def au_basis() -> np.ndarray:
    """(17, 68, 3) mm of landmark motion per unit of AU intensity."""
    b = np.array(AU_BASIS, dtype=np.float64, copy=True)
    b[AU["AU45"], UPPER_LID, 1] = 2.9                    # closed at ~3 (8.7 mm lid aperture)
    b[AU["AU09"], NOSTRILS, 1] = -1.2                    # nose wings pulled up
    b[AU["AU09"], [21, 22], 1] = 0.6                     # medial brows lowered
    b[AU["AU09"], [50, 51, 52], 1] = -0.5                # upper lip lifted a little
    b[AU["AU14"], [48, 60], 0], b[AU["AU14"], [54, 64], 0] = 0.6, -0.6   # corners tightened inward
    b[AU["AU14"], CORNERS, 2] = 1.5                      # ... and pulled back into the cheek
    b[AU["AU23"], UPPER_LIP_OUT, 1] = 0.8                # red of the lips narrowed
    b[AU["AU23"], LOWER_LIP_OUT, 1] = -0.8
    return b


BASIS = au_basis()


def rest_template() -> np.ndarray:
    """(68, 3) the generator's template with the lips together at rest (its inner lip ring stands
    8 mm open, which would show teeth with every AU at 0); AU25/AU26 part them."""
    t = np.array(TEMPLATE, dtype=np.float64, copy=True)
    t[[61, 62, 63], 1] += 3.2
    t[[65, 66, 67], 1] -= 3.2
    return t


REST = rest_template()


def identity_offsets(rng: np.random.Generator) -> np.ndarray:
    """(68, 3) mm: one person's deviation from the template (proportions a FACS coder ignores)."""
    t = REST
    off = np.zeros_like(t)
    off[:, 0] += t[:, 0] * rng.normal(0, 0.06)                       # face width
    off[:, 1] += t[:, 1] * rng.normal(0, 0.05)                       # face height
    eye_dx, eye_scale = rng.normal(0, 2.0), np.exp(rng.normal(0, 0.1))
    for eye, sign in ((EYE_L, -1), (EYE_R, 1)):
        centre = t[eye].mean(axis=0)
        off[eye] += (t[eye] - centre) * (eye_scale - 1) + [sign * eye_dx, 0, 0]
    off[NOSE_BRIDGE + NOSTRILS, 1] += (t[NOSE_BRIDGE + NOSTRILS, 1] + 30) * rng.normal(0, 0.08)  # nose length
    off[NOSTRILS, 0] += t[NOSTRILS, 0] * rng.normal(0, 0.12)         # nose width
    mouth = MOUTH_OUT + MOUTH_IN
    off[mouth, 0] += t[mouth, 0] * rng.normal(0, 0.08)               # mouth width
    off[UPPER_LIP_OUT + LOWER_LIP_OUT, 1] += (t[UPPER_LIP_OUT + LOWER_LIP_OUT, 1] - 42) * rng.normal(0, 0.2)
    off[BROW_L + BROW_R, 1] += rng.normal(0, 2.0)                    # brow height
    chin = np.abs(t[JAW, 0]) < 40
    off[np.array(JAW)[chin], 0] += t[np.array(JAW)[chin], 0] * rng.normal(0, 0.1)  # narrow or broad chin
    return off


def face_points(offsets: np.ndarray, aus: np.ndarray) -> np.ndarray:
    """(N, 68, 3) landmarks in the face frame for AU intensities aus (N, 17)."""
    return REST + offsets + np.einsum("na,apc->npc", np.asarray(aus, dtype=np.float64), BASIS)


def rotations(angles: np.ndarray) -> np.ndarray:
    """(N, 3) pitch, yaw, roll in radians -> (N, 3, 3) rotation matrices R = Rz @ Ry @ Rx."""
    cx, cy, cz = np.cos(angles).T
    sx, sy, sz = np.sin(angles).T
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


# The head rotates about a point behind the face (the neck pivot), not about the nose.
PIVOT = np.array([0.0, 10.0, 90.0])
CAMERA_MM = 650.0          # camera distance; the lens is chosen so the face spans ~`face_frac` of the frame
FACE_HEIGHT_MM = 190.0     # hair line to chin


def project(points: np.ndarray, pose: np.ndarray, *, size: int, face_frac: float = 0.62) -> np.ndarray:
    """Pinhole projection of face-frame points (N, P, 3) with pose (N, 6) = pitch, yaw, roll (rad),
    dx, dy (fraction of the frame), scale (1 = nominal) -> (N, P, 2) pixel coordinates."""
    rot = rotations(pose[:, :3])
    cam = np.einsum("nij,npj->npi", rot, points - PIVOT) + PIVOT + [0.0, 0.0, CAMERA_MM]
    focal = size * face_frac * CAMERA_MM / FACE_HEIGHT_MM * pose[:, 5]
    xy = focal[:, None, None] * cam[..., :2] / cam[..., 2:3]
    centre = size / 2 + size * pose[:, None, 3:5] + [0.0, -0.04 * size]   # eyes a little above the middle
    return xy + centre
