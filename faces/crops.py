"""Faces out of frames: OpenCV Haar detection, eye alignment, square zero-padding, resizing.

    cropper = FaceCropper(CropConfig(size=64, grayscale=True))
    crops, kept, report = cropper.crop_all(frames)       # frames (N, H, W, 3) uint8 RGB
    # crops (K, 64, 64) uint8 for the K kept frames; kept (N,) bool; report: frames, kept, dropped by reason

Frames without a face are dropped and counted by reason, as ingestion counts its rows. The cascades
are the ones inside opencv-python-headless 4.x (`cv2.data.haarcascades`); 5.x ships none, hence the
pin below 5. Detection runs on a grayscale, histogram-equalised copy; the largest face wins.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class CropConfig:
    size: int = 64                  # output side (Fung & McDuff: 64x64 grayscale)
    grayscale: bool = True
    margin: float = 0.1             # share of the detected box added on each side
    align_eyes: bool = True         # rotate so the eyes are level where both are found
    min_face: float = 0.25          # smallest face side as a share of the shorter frame side
    scale_factor: float = 1.1
    min_neighbors: int = 3
    cascade: str = "haarcascade_frontalface_alt2.xml"   # finds more of the rendered faces than _default
    profile_fallback: bool = True   # then try a locally equalised (CLAHE) frame, then the profile cascade


def _cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / name
    clf = cv2.CascadeClassifier(str(path))
    if clf.empty():
        raise FileNotFoundError(f"Haar cascade {path} is missing: opencv-python-headless 4.x ships it (5.x does not)")
    return clf


class FaceCropper:
    def __init__(self, cfg: CropConfig = CropConfig()):
        self.cfg = cfg
        self.face = _cascade(cfg.cascade)
        self.profile = _cascade("haarcascade_profileface.xml") if cfg.profile_fallback else None
        self.eyes = _cascade("haarcascade_eye.xml") if cfg.align_eyes else None
        self.clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))

    def detect(self, gray: np.ndarray, raw: np.ndarray | None = None) -> tuple[tuple[int, int, int, int] | None, str | None]:
        """Largest face box (x, y, w, h) in an equalised grayscale frame, or None and why.
        `raw`: the unequalised frame, for the CLAHE fallback (dark faces on bright backgrounds)."""
        c = self.cfg
        side = int(c.min_face * min(gray.shape))
        found = self.face.detectMultiScale(gray, scaleFactor=c.scale_factor, minNeighbors=c.min_neighbors,
                                           minSize=(side, side))
        if len(found) == 0 and self.profile is not None and raw is not None:
            found = self.face.detectMultiScale(self.clahe.apply(raw), scaleFactor=c.scale_factor,
                                               minNeighbors=c.min_neighbors, minSize=(side, side))
        if len(found) == 0 and self.profile is not None:
            for flip in (False, True):
                img = gray[:, ::-1].copy() if flip else gray
                found = self.profile.detectMultiScale(img, scaleFactor=c.scale_factor,
                                                      minNeighbors=c.min_neighbors, minSize=(side, side))
                if len(found):
                    if flip:
                        found = np.array([[gray.shape[1] - x - w, y, w, h] for x, y, w, h in found])
                    break
        if len(found) == 0:
            return None, "no_face"
        x, y, w, h = max(found, key=lambda b: b[2] * b[3])
        return (int(x), int(y), int(w), int(h)), None

    def _eye_angle(self, gray: np.ndarray, box) -> float | None:
        x, y, w, h = box
        top = gray[y:y + h // 2, x:x + w]
        eyes = self.eyes.detectMultiScale(top, scaleFactor=1.1, minNeighbors=3, minSize=(max(4, w // 10),) * 2)
        if len(eyes) < 2:
            return None
        eyes = sorted(eyes, key=lambda e: e[2] * e[3])[-2:]
        (x1, y1), (x2, y2) = [(ex + ew / 2, ey + eh / 2) for ex, ey, ew, eh in sorted(eyes, key=lambda e: e[0])]
        if abs(x2 - x1) < w * 0.2:    # two boxes on one eye
            return None
        angle = float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))
        return angle if abs(angle) < 30 else None

    def crop(self, frame: np.ndarray) -> tuple[np.ndarray | None, str | None]:
        """One RGB uint8 frame -> (crop, None) or (None, reason)."""
        c = self.cfg
        raw = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        gray = cv2.equalizeHist(raw)
        box, why = self.detect(gray, raw)
        if box is None:
            return None, why
        src = raw if c.grayscale else frame
        x, y, w, h = box
        angle = self._eye_angle(gray, box) if self.eyes is not None else None
        if angle:
            rot = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, 1.0)
            src = cv2.warpAffine(src, rot, (src.shape[1], src.shape[0]), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        pad = int(round(c.margin * max(w, h)))
        side = max(w, h) + 2 * pad
        cx, cy = x + w // 2, y + h // 2
        x0, y0 = cx - side // 2, cy - side // 2
        # zero padding where the square leaves the frame (the paper pads to 1:1 with zeros)
        border = max(0, -x0, -y0, x0 + side - src.shape[1], y0 + side - src.shape[0])
        if border:
            src = cv2.copyMakeBorder(src, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
        face = src[y0 + border:y0 + border + side, x0 + border:x0 + border + side]
        return cv2.resize(face, (c.size, c.size), interpolation=cv2.INTER_AREA), None

    def crop_all(self, frames) -> tuple[np.ndarray, np.ndarray, dict]:
        """Crops of every frame with a face (K, size, size[, 3]), kept mask (N,), report."""
        out, kept, reasons = [], [], Counter()
        for frame in frames:
            crop, why = self.crop(frame)
            kept.append(crop is not None)
            if crop is None:
                reasons[why] += 1
            else:
                out.append(crop)
        shape = (0, self.cfg.size, self.cfg.size) + (() if self.cfg.grayscale else (3,))
        crops = np.stack(out) if out else np.zeros(shape, np.uint8)
        report = {"frames": len(kept), "kept": int(sum(kept)), "dropped": dict(sorted(reasons.items()))}
        return crops, np.asarray(kept, dtype=bool), report
