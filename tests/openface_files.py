"""Small OpenFace-format CSVs written cell by cell, for reader and ingestion tests.

Cells are text, so a test can put anything in one (`-nan(ind)`, an empty field, a cut-off row).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from data.openface.reader import DEFAULT_AUS
from data.openface.format import openface_columns


class Table:
    """Column names and rows of text cells; `set` edits one cell by row and column name."""

    def __init__(self, columns: list[str], rows: list[list[str]]):
        self.columns, self.rows = columns, rows

    def set(self, row: int, name: str, text: str) -> "Table":
        self.rows[row][self.columns.index(name)] = text
        return self

    def column(self, name: str) -> list[str]:
        return [r[self.columns.index(name)] for r in self.rows]

    def aus(self, au_names=DEFAULT_AUS) -> np.ndarray:  # (n, n_AU) float32 as a reader must see them
        idx = [self.columns.index(f"{a}_r") for a in au_names]
        return np.array([[np.float32(float(r[i])) for i in idx] for r in self.rows], dtype=np.float32)

    def write(self, path: str | Path, *, spaced: bool = False, crlf: bool = False,
              final_newline: bool = True, cut_last: Optional[int] = None) -> Path:
        """`cut_last=k` keeps only the first k fields of the last row (a writer killed mid-row)."""
        sep, nl = (", " if spaced else ","), ("\r\n" if crlf else "\n")
        lines = [sep.join(self.columns)] + [sep.join(r) for r in self.rows]
        if cut_last is not None:
            lines[-1] = sep.join(self.rows[-1][:cut_last])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((nl.join(lines) + (nl if final_newline else "")).encode())
        return path


def openface_table(n: int, *, fps: float = 30.0, seed: int = 0, face_id: bool = True,
                   layout: str = "core", start_frame: int = 1) -> Table:
    """n rows of plausible OpenFace 2.x output at `fps`: confidence 0.98, success 1, AUs with 2 decimals."""
    rng = np.random.default_rng(seed)
    columns = openface_columns(face_id=face_id, layout=layout)
    rows = []
    for i in range(n):
        row = []
        for name in columns:
            if name == "frame":
                row.append(str(start_frame + i))
            elif name == "face_id":
                row.append("0")
            elif name == "timestamp":
                row.append(f"{i / fps:.3f}")
            elif name == "confidence":
                row.append("0.98")
            elif name == "success":
                row.append("1")
            elif name.endswith("_r"):
                row.append(f"{max(0.0, rng.normal(0.5, 1.2)):.2f}")
            elif name.endswith("_c"):
                row.append(f"{rng.integers(0, 2):.2f}")
            else:
                row.append(f"{rng.normal(0, 50):.3f}")
        rows.append(row)
    return Table(columns, rows)
