"""The paper's published vocabulary (../shared/auglove) as a vocabulary directory, for tests and benchmarks.

Reads the two files directly (the importer of `cluster.py import=` is the user's way): the 1000
centres and the `cluster,count` list. Centres that are NaN or have no count stand for no frame and
are left out (row 689 is NaN, cluster 999 has no count), so 998 centres carry 5,292,819 frames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data.openface.format import AU_INTENSITY

AUGLOVE = Path(__file__).resolve().parents[1].parent / "shared" / "auglove"


def published_centres(folder: Path = AUGLOVE, k: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(centres (m, 17) float64, counts (m,) int64) of the finite centres that have a count."""
    rows = (folder / f"cluster_centers_action_units_{k}.csv").read_text().split()
    centres = np.array([[float(v) if v else np.nan for v in row.split(",")] for row in rows])  # empty: NaN
    counts = np.zeros(len(centres), dtype=np.int64)
    pairs = np.loadtxt(folder / f"cluster_counter_{k}.csv", delimiter=",", dtype=np.int64).reshape(-1, 2)
    counts[pairs[:, 0]] = pairs[:, 1]
    keep = np.isfinite(centres).all(axis=1) & (counts > 0)
    return centres[keep], counts[keep]


def write_published_vocab(out: Path, folder: Path = AUGLOVE) -> Path:
    """A directory holding centroids.pt of the published centres (the keys every vocabulary has)."""
    centres, counts = published_centres(folder)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"centroids": torch.from_numpy(centres).float(), "counts": torch.from_numpy(counts),
                "au_names": list(AU_INTENSITY)}, out / "centroids.pt")
    return out
