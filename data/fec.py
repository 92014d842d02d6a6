"""The FEC (Google Facial Expression Comparison) triplet CSV, read and written.

One triplet per line, no header, 28 columns:
    0-4    image 1: URL, then its face box as fractions of the image: left column, right column,
           top row, bottom row
    5-9    image 2, the same
    10-14  image 3, the same
    15     triplet type: ONE_CLASS_TRIPLET | TWO_CLASS_TRIPLET | THREE_CLASS_TRIPLET
    16-27  six (annotator id, label) pairs; a label 1-3 names the image whose expression is the
           most different from the other two

`read_fec` checks every field and names the file, line and column of the first bad one. The
renderer's triplets are written in the same layout (`write_fec`, local paths as URLs), so one
reader serves FEC and the synthetic default. `odd_one_out` gives the majority label, from which a
triplet orders as (anchor, positive, negative) for the triplet loss.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.io import save_text

TRIPLET_TYPES = ("ONE_CLASS_TRIPLET", "TWO_CLASS_TRIPLET", "THREE_CLASS_TRIPLET")
N_COLUMNS, N_ANNOTATORS = 28, 6


@dataclass
class FECTriplets:
    urls: list[tuple[str, str, str]]
    boxes: np.ndarray            # (n, 3, 4) float64: left, right, top, bottom as fractions of the image
    types: list[str]             # (n,) one of TRIPLET_TYPES
    annotators: list[list[str]]  # (n, 6)
    labels: np.ndarray           # (n, 6) int64 in 1..3
    path: str = "fec"

    def __len__(self) -> int:
        return len(self.urls)

    def odd_one_out(self) -> tuple[np.ndarray, np.ndarray]:
        """(n,) 0-based index of the most-different image by majority vote, and (n,) the share of
        annotators who chose it (ties go to the lowest index; filter on agreement to drop them)."""
        votes = np.stack([(self.labels == k).sum(1) for k in (1, 2, 3)], axis=1)   # (n, 3)
        odd = votes.argmax(1)
        return odd, votes.max(1) / self.labels.shape[1]

    def ordered(self) -> np.ndarray:
        """(n, 3) image positions (0..2) as (anchor, positive, negative): the odd one last."""
        odd, _ = self.odd_one_out()
        others = np.array([[1, 2], [0, 2], [0, 1]])[odd]
        return np.concatenate([others, odd[:, None]], axis=1)


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None


def read_fec(path: str | Path) -> FECTriplets:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FEC triplet file {path} does not exist")
    urls, boxes, types, annotators, labels = [], [], [], [], []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            where = f"{path}:{line}"
            if len(row) != N_COLUMNS:
                raise ValueError(f"{where}: {len(row)} columns, an FEC triplet row has {N_COLUMNS} (no header)")
            row = [c.strip() for c in row]
            box = np.array([[_number(row[5 * i + j], f"{where} column {5 * i + j + 1}") for j in range(1, 5)]
                            for i in range(3)])
            bad = [i for i in range(3) if not (0 <= box[i, 0] < box[i, 1] <= 1 and 0 <= box[i, 2] < box[i, 3] <= 1)]
            if bad:
                raise ValueError(f"{where}: face box of image {bad[0] + 1} {box[bad[0]].tolist()} is not "
                                 "left < right, top < bottom within [0, 1]")
            if row[15] not in TRIPLET_TYPES:
                raise ValueError(f"{where} column 16: triplet type {row[15]!r} is not one of {TRIPLET_TYPES}")
            votes = row[16:28:2], row[17:28:2]
            label = [int(v) if v in ("1", "2", "3") else 0 for v in votes[1]]
            if 0 in label:
                raise ValueError(f"{where}: annotator labels {list(votes[1])} must each be 1, 2 or 3")
            urls.append((row[0], row[5], row[10]))
            boxes.append(box)
            types.append(row[15])
            annotators.append(list(votes[0]))
            labels.append(label)
    if not urls:
        raise ValueError(f"{path}: no triplet rows")
    return FECTriplets(urls=urls, boxes=np.stack(boxes), types=types, annotators=annotators,
                       labels=np.array(labels, dtype=np.int64), path=str(path))


def write_fec(triplets: FECTriplets, path: str | Path) -> None:
    """The same 28-column layout, written atomically."""
    lines = []
    for i in range(len(triplets)):
        row = []
        for k in range(3):
            row += [triplets.urls[i][k]] + [f"{v:.6g}" for v in triplets.boxes[i, k]]
        row.append(triplets.types[i])
        for a, v in zip(triplets.annotators[i], triplets.labels[i]):
            row += [a, str(int(v))]
        lines.append(row)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    save_text(buf.getvalue(), path)
