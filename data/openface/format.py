"""The OpenFace 2.x FeatureExtraction CSV layout, and a fast writer for it.

`openface_columns()` gives the column names in the order FeatureExtraction writes them (the full
output has 714 columns with `face_id`, 713 without). Two reduced layouts seen in the wild keep a
subset in the same order: "gaze" (frame..success, gaze, pose, AUs; openFaceR exports) and "core"
(frame..success, pose, AUs; EmoInfer exports).

`write_openface_csv` writes a numeric matrix with OpenFace's fixed decimals per column. Text
formatting is the cost of synthetic data, so values are turned into integer codes and looked up in
cached tables of strings; only rows are joined in Python.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from utils.io import atomic_path

# The 17 intensities (METHOD.md order) and the 18 presences (AU28 has no intensity).
AU_INTENSITY = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
                "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45")
AU_PRESENCE = AU_INTENSITY[:15] + ("AU26", "AU28", "AU45")
AU_R_NAMES = tuple(f"{a}_r" for a in AU_INTENSITY)
AU_C_NAMES = tuple(f"{a}_c" for a in AU_PRESENCE)

LAYOUTS = ("full", "gaze", "core")
N_EYE_LMK, N_LMK, N_PDM = 56, 68, 34


def _gaze() -> list[str]:
    return [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]


def _pose() -> list[str]:
    return [f"pose_{a}" for a in ("Tx", "Ty", "Tz", "Rx", "Ry", "Rz")]


def openface_columns(*, face_id: bool = True, layout: str = "full") -> list[str]:
    """Column names in FeatureExtraction order, without the leading spaces of `", "` files."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: expected one of {LAYOUTS}")
    cols = ["frame"] + (["face_id"] if face_id else []) + ["timestamp", "confidence", "success"]
    if layout in ("full", "gaze"):
        cols += _gaze()
    if layout == "full":
        cols += [f"eye_lmk_{a}_{i}" for a in "xyXYZ" for i in range(N_EYE_LMK)]
    cols += _pose()
    if layout == "full":
        cols += [f"{a}_{i}" for a in "xyXYZ" for i in range(N_LMK)]
        cols += ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty"] + [f"p_{i}" for i in range(N_PDM)]
    return cols + list(AU_R_NAMES) + list(AU_C_NAMES)


def column_decimals(name: str) -> int:
    """Decimals OpenFace 2.x prints for a column (frame/face_id/success are integers)."""
    if name in ("frame", "face_id", "success"):
        return 0
    if name in ("timestamp", "gaze_angle_x", "gaze_angle_y") or name.startswith(("pose_R", "p_")):
        return 3
    if name.startswith("gaze_"):
        return 6
    if name in ("confidence",) or name.startswith("AU"):
        return 2
    return 1  # landmarks (pixels, millimetres) and pose_T (millimetres)


def header_text(columns: Sequence[str], *, spaced: bool) -> str:
    return (", " if spaced else ",").join(columns)


class _Tables:
    """Cached strings for integer codes: code c with d decimals reads as c / 10**d.

    Codes within a table's range are one lookup. Wider ranges (6-decimal gaze vectors, timestamps of
    long interviews) are composed from sign, integer part and 3-digit groups of the fraction."""

    MAX_SPAN = 400_000  # strings per table (~25 MB); tables double until they reach it

    def __init__(self):
        self.tables: dict[int, tuple[int, np.ndarray]] = {}  # decimals -> (lowest code, strings)
        self.pads = {k: np.array([f"{i:0{k}d}" for i in range(10 ** k)], dtype=object) for k in (1, 2, 3)}

    @staticmethod
    def text(code: int, d: int) -> str:
        if d == 0:
            return str(code)
        a, p = abs(code), 10 ** d
        return f"{'-' if code < 0 else ''}{a // p}.{a % p:0{d}d}"

    def lookup(self, codes: np.ndarray, d: int) -> np.ndarray:  # object array, same shape
        if codes.size == 0:
            return np.empty(codes.shape, dtype=object)
        lo, hi = int(codes.min()), int(codes.max())
        cur = self.tables.get(d)
        if cur is None or lo < cur[0] or hi >= cur[0] + len(cur[1]):
            if cur is not None:  # double around the old range: few rebuilds
                old_lo, old_hi = cur[0], cur[0] + len(cur[1]) - 1
                width = old_hi - old_lo + 1
                lo, hi = min(lo, old_lo - width // 2), max(hi, old_hi + width // 2)
            else:
                lo, hi = min(lo, -(10 ** (d + 1))), max(hi, 10 ** (d + 2))  # e.g. -10.00 .. 100.00
            if hi - lo + 1 > self.MAX_SPAN:
                return self.composed(codes, d)
            cur = (lo, np.array([self.text(c, d) for c in range(lo, hi + 1)], dtype=object))
            self.tables[d] = cur
        return cur[1][codes - cur[0]]

    def composed(self, codes: np.ndarray, d: int) -> np.ndarray:
        a = np.abs(codes)
        out = np.where(codes < 0, "-", "").astype(object) + self.lookup(a // 10 ** d, 0)
        if d == 0:
            return out
        out = out + "."
        frac, left = a % 10 ** d, d
        while left > 0:  # 3-digit groups, most significant first
            k = min(3, left)
            left -= k
            out = out + self.pads[k][(frac // 10 ** left) % 10 ** k]
        return out


_TABLES = _Tables()


def to_codes(values: np.ndarray, decimals: int) -> np.ndarray:
    """Integer codes of values rounded to `decimals` (half to even, like numpy.round)."""
    return np.rint(np.asarray(values, dtype=np.float64) * 10 ** decimals).astype(np.int64)


def format_rows(values: np.ndarray, decimals: Sequence[int], *, sep: str) -> list[str]:
    """One text line (no newline) per row of `values` (n, n_cols)."""
    n, c = values.shape
    cells = np.empty((n, c), dtype=object)
    dec = np.asarray(decimals)
    for d in np.unique(dec):
        cols = np.flatnonzero(dec == d)
        cells[:, cols] = _TABLES.lookup(to_codes(values[:, cols], int(d)), int(d))
    return [sep.join(r) for r in cells.tolist()]


def write_openface_csv(path: str | Path, columns: Sequence[str], values: np.ndarray, *,
                       spaced: bool = False, crlf: bool = False, final_newline: bool = True,
                       chunk_cells: int = 400_000) -> int:
    """Write `values` (n, len(columns)) as an OpenFace CSV; returns the number of bytes written.

    `spaced` uses OpenFace's `", "` separator (every name after the first gets a leading space).
    The file appears atomically (temp file + rename)."""
    n, c = values.shape
    if c != len(columns):
        raise ValueError(f"{path}: {c} value columns for {len(columns)} names")
    sep, nl = (", " if spaced else ","), ("\r\n" if crlf else "\n")
    decimals = [column_decimals(name) for name in columns]
    rows_per_chunk = max(1, chunk_cells // max(c, 1))
    written = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        text = header_text(columns, spaced=spaced)
        for start in range(0, n, rows_per_chunk):
            lines = format_rows(values[start:start + rows_per_chunk], decimals, sep=sep)
            text += nl + nl.join(lines)
            written += f.write(text.encode("ascii"))
            text = ""
        if final_newline:
            written += f.write(nl.encode("ascii"))
    return written
