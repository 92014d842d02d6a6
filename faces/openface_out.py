"""AUs out as OpenFace 2.x CSVs, so `python ingest.py` reads a detector's output unchanged.

    write_au_csv(path, intensity, presence, success, fps=20.0)

The "core" layout (frame, timestamp, confidence, success, pose, AU_r, AU_c), without face_id.
Pose is not estimated by an AU detector: its columns are 0. `AU28_c` (not rendered, not
detected) is 0. Frames without a face are written as OpenFace writes a lost track: success 0,
confidence 0, every value 0, so ingestion drops them and counts why.
For a trained detector, `intensity` is 5 x the presence probability: a 0-5 score on OpenFace's
scale, not a calibrated intensity (the detector is trained for presence, as in the paper).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.openface.format import AU_C_NAMES, AU_INTENSITY, AU_PRESENCE, openface_columns, write_openface_csv

DETECTED_CONFIDENCE = 0.98


def write_au_csv(path: str | Path, intensity: np.ndarray, presence: np.ndarray, success: np.ndarray, *,
                 fps: float) -> Path:
    """intensity (n, 17) in AU_INTENSITY order (0-5), presence (n, 17) 0/1 same order, success (n,) bool."""
    n = len(success)
    if intensity.shape != (n, len(AU_INTENSITY)) or presence.shape != (n, len(AU_INTENSITY)):
        raise ValueError(f"{path}: intensity {intensity.shape} / presence {presence.shape}, expected ({n}, 17)")
    ok = np.asarray(success, dtype=bool)
    columns = openface_columns(face_id=False, layout="core")
    pres18 = np.zeros((n, len(AU_C_NAMES)))
    for j, au in enumerate(AU_PRESENCE):
        if au in AU_INTENSITY:
            pres18[:, j] = presence[:, AU_INTENSITY.index(au)]
    rows = np.arange(n)
    head = np.stack([rows + 1.0, rows / fps, np.where(ok, DETECTED_CONFIDENCE, 0.0), ok.astype(float)], axis=1)
    body = np.concatenate([np.zeros((n, 6)), np.clip(intensity, 0, 5), pres18], axis=1)
    body[~ok] = 0.0
    write_openface_csv(path, columns, np.concatenate([head, body], axis=1))
    return Path(path)
