"""faces.py's tables (results.md) and the example faces it shows in TensorBoard."""
from __future__ import annotations

import math

import cv2
import numpy as np

from faces.metrics import PAPER_AUS

# Fung & McDuff, Tables III-V (DISFA, F1 %): references only, not comparable with rendered faces
PAPER_ROWS = {"OpenFace 2.0 (paper)": [41.9, 34.7, 66.7, 42.6, 36.3, 60.8, 90.3, 55.8, 53.6],
              "Fung & McDuff (paper)": [41.5, 49.5, 70.2, 46.2, 47.9, 75.6, 90.7, 57.6, 59.9]}
PAPER_IMAGES = {1000: 28.0, 2000: 39.7, 10000: 44.6, 160000: 59.9}
PAPER_IDENTITIES = {12: 0.0, 200: 45.7, 600: 49.3, 1000: 58.5, 2000: 59.9}


def _f(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def f1_table(rows: dict[str, dict]) -> str:
    """rows: name -> au_metrics() result."""
    head = ["", *PAPER_AUS, "mean (8)", "mean (12)", "PR-AUC", "ROC-AUC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in rows.items():
        cells = [m["f1"].get(a, math.nan) for a in PAPER_AUS]
        cells += [m["mean8"]["f1"], m["mean"]["f1"], m["mean"]["pr_auc"], m["mean"]["roc_auc"]]
        lines.append(f"| {name} | " + " | ".join(_f(v) for v in cells) + " |")
    for name, vals in PAPER_ROWS.items():
        lines.append(f"| {name}, DISFA | " + " | ".join(_f(v) for v in vals) + " | | | |")
    return "\n".join(lines)


def scaling_table(points: list[tuple[int, int, dict]], what: str, paper: dict[int, float]) -> str:
    """points: (size, images used, au_metrics()) in increasing size."""
    extra = what != "images"    # by identities, also show how many images they have
    lines = [f"| {what} |" + (" images |" if extra else "") + " mean F1 (8) | mean F1 (12) | PR-AUC | ROC-AUC | "
             "paper F1 (8), DISFA |", "|---|" + ("---|" if extra else "") + "---|---|---|---|---|"]
    for n, n_img, m in points:
        lines.append(f"| {n} |" + (f" {n_img} |" if extra else "") + f" {_f(m['mean8']['f1'])} | {_f(m['mean']['f1'])} | "
                     f"{_f(m['mean']['pr_auc'])} | {_f(m['mean']['roc_auc'])} | {_f(paper.get(n))} |")
    return "\n".join(lines)


def example_grid(crops: np.ndarray, truth: np.ndarray, probs: np.ndarray, au_names, *, cols: int = 6,
                 side: int = 128) -> np.ndarray:
    """(H, W, 3) uint8: each face upscaled with its true (T) and predicted (P, p >= 0.5) AU numbers."""
    tiles = []
    for img, t, p in zip(crops, truth, probs):
        tile = cv2.resize(img, (side, side), interpolation=cv2.INTER_NEAREST)
        tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2RGB) if tile.ndim == 2 else tile.copy()
        true = " ".join(a[2:].lstrip("0") for a, v in zip(au_names, t) if v == 1)
        pred = " ".join(a[2:].lstrip("0") for a, v in zip(au_names, p) if v >= 0.5)
        for row, (text, color) in enumerate(((f"T {true}", (80, 255, 80)), (f"P {pred}", (255, 200, 60)))):
            y = side - 18 + 12 * row
            cv2.putText(tile, text, (2, y), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 2, cv2.LINE_AA)
            cv2.putText(tile, text, (2, y), cv2.FONT_HERSHEY_SIMPLEX, 0.33, color, 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)]
    return np.concatenate(rows, axis=0)
