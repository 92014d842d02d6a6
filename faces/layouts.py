"""AU label layouts of the real datasets, read and written: DISFA and BP4D.

DISFA   ROOT/ActionUnit_Labels/SN001/SN001_au1.txt    one `frame,intensity` line per frame (0-5), 12 AUs
        ROOT/Videos_LeftCamera/LeftVideoSN001_comp.avi
BP4D    ROOT/AU_OCC/F001_T1.csv                       header; column `0` frame, column `n` AU n; 0/1, 9 = unlabelled
        ROOT/AU_INT/AU06/F001_T1_AU06.csv             no header: frame, intensity 0-5, 9 = invalid (AUs 6 10 12 14 17)
        ROOT/Sequences/F001/T1/0000.jpg ...           frames as images (any folder of numbered images)

`read_labels(root)` reads either into `LabelledVideo`s with one frame axis and NaN where a label is
missing; the renderer writes its truth in both layouts (`write_disfa`, `write_bp4d`), so the same
loader serves rendered and real data. Malformed lines are a ValueError naming file and line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.io import save_text

DISFA_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
BP4D_OCC_AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
BP4D_INT_AUS = (6, 10, 12, 14, 17)
DISFA_POSITIVE_AT = 2      # Fung & McDuff: frames with intensity >= 2 are positive
BP4D_OCCURRENCE_AT = 1.0   # rendered truth: an intensity of 1 (FACS "A", trace) or more is an occurrence


def au_name(n: int) -> str:
    return f"AU{n:02d}"


@dataclass
class LabelledVideo:
    video_id: str                 # SN001 | F001_T1
    subject: str                  # SN001 | F001
    frames: np.ndarray            # (n,) int64 frame numbers as the label files give them
    au_names: tuple[str, ...]     # ("AU01", ...)
    occurrence: np.ndarray        # (n, A) float32 0/1, NaN = unlabelled
    intensity: np.ndarray         # (n, A) float32 0-5, NaN = not coded in this dataset
    source: Path | None           # the video file or image folder, None if absent


def _rows(path: Path, *, header: bool) -> tuple[list[str] | None, np.ndarray]:
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    head = None
    if header:
        if not lines:
            raise ValueError(f"{path}: empty file, expected a header row")
        head, lines = [h.strip() for h in lines[0].split(",")], lines[1:]
    rows = []
    for i, ln in enumerate(lines, start=2 if header else 1):
        try:
            rows.append([float(v) for v in ln.split(",")])
        except ValueError:
            raise ValueError(f"{path}, line {i}: expected comma-separated numbers, got {ln[:60]!r}") from None
        if rows and len(rows[-1]) != len(rows[0]):
            raise ValueError(f"{path}, line {i}: {len(rows[-1])} fields, the first row has {len(rows[0])}")
    return head, np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


# ---- DISFA ----
def write_disfa(root: str | Path, subject: str, intensity: np.ndarray) -> None:
    """Truth (n, 12) in DISFA_AUS order, rounded to DISFA's integer intensities; frames 1..n."""
    intensity = np.rint(np.clip(intensity, 0, 5)).astype(int)
    folder = Path(root) / "ActionUnit_Labels" / subject
    for j, au in enumerate(DISFA_AUS):
        text = "".join(f"{f + 1},{v}\n" for f, v in enumerate(intensity[:, j].tolist()))
        save_text(text, folder / f"{subject}_au{au}.txt")


def disfa_video(root: Path, subject: str) -> Path | None:
    hits = sorted(p for p in root.rglob("*") if p.is_file() and p.stem.lower() == f"leftvideo{subject}_comp".lower())
    return hits[0] if hits else None


def read_disfa(root: str | Path) -> list[LabelledVideo]:
    root = Path(root)
    labels = root / "ActionUnit_Labels"
    if not labels.is_dir():
        raise FileNotFoundError(f"{labels}: no DISFA label folder")
    out = []
    for folder in sorted(p for p in labels.iterdir() if p.is_dir()):
        sub = folder.name
        cols, frames = [], None
        for au in DISFA_AUS:
            path = folder / f"{sub}_au{au}.txt"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (DISFA has one file per AU: {DISFA_AUS})")
            _, rows = _rows(path, header=False)
            if rows.shape[1] != 2:
                raise ValueError(f"{path}: expected 2 fields per line (frame,intensity), got {rows.shape[1]}")
            if frames is None:
                frames = rows[:, 0].astype(np.int64)
            elif len(rows) != len(frames) or np.any(rows[:, 0] != frames):
                raise ValueError(f"{path}: frame numbers differ from {sub}_au{DISFA_AUS[0]}.txt")
            cols.append(rows[:, 1])
        inten = np.stack(cols, axis=1).astype(np.float32)
        if np.any((inten < 0) | (inten > 5)):
            raise ValueError(f"{folder}: intensities outside 0-5")
        out.append(LabelledVideo(video_id=sub, subject=sub, frames=frames, au_names=tuple(map(au_name, DISFA_AUS)),
                                 occurrence=(inten >= DISFA_POSITIVE_AT).astype(np.float32), intensity=inten,
                                 source=disfa_video(root, sub)))
    return out


# ---- BP4D ----
def write_bp4d(root: str | Path, subject: str, task: str, aus: dict[int, np.ndarray]) -> None:
    """Truth intensities {AU number: (n,)}; AUs of BP4D_OCC_AUS without truth are written as 9."""
    root = Path(root)
    n = len(next(iter(aus.values())))
    occ = [np.full(n, 9) if au not in aus else (aus[au] >= BP4D_OCCURRENCE_AT).astype(int) for au in BP4D_OCC_AUS]
    rows = np.stack([np.arange(1, n + 1), *occ], axis=1)
    header = ",".join(["0", *map(str, BP4D_OCC_AUS)])
    save_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows.tolist()),
              root / "AU_OCC" / f"{subject}_{task}.csv")
    for au in BP4D_INT_AUS:
        if au in aus:
            vals = np.rint(np.clip(aus[au], 0, 5)).astype(int)
            save_text("".join(f"{f + 1},{v}\n" for f, v in enumerate(vals.tolist())),
                      root / "AU_INT" / f"AU{au:02d}" / f"{subject}_{task}_AU{au:02d}.csv")


def read_bp4d(root: str | Path) -> list[LabelledVideo]:
    root = Path(root)
    occ_dir = root / "AU_OCC"
    if not occ_dir.is_dir():
        raise FileNotFoundError(f"{occ_dir}: no BP4D occurrence folder")
    out = []
    for path in sorted(occ_dir.glob("*.csv")):
        m = re.fullmatch(r"([A-Za-z]\d+)_(T\w+)", path.stem)
        if not m:
            raise ValueError(f"{path}: name should be SUBJECT_TASK.csv (F001_T1.csv)")
        head, rows = _rows(path, header=True)
        if head[0] != "0":
            raise ValueError(f"{path}: first column should be `0` (frame numbers), got {head[0]!r}")
        try:
            numbers = [int(h) for h in head[1:]]
        except ValueError:
            raise ValueError(f"{path}: header columns must be AU numbers, got {head}") from None
        frames = rows[:, 0].astype(np.int64)
        occ = rows[:, 1:].astype(np.float32)
        bad = ~np.isin(occ, (0, 1, 9))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"{path}, line {r + 2}, column {head[c + 1]}: {occ[r, c]:g} is not 0, 1 or 9")
        occ[occ == 9] = np.nan
        inten = np.full_like(occ, np.nan)
        for j, au in enumerate(numbers):
            ipath = root / "AU_INT" / f"AU{au:02d}" / f"{path.stem}_AU{au:02d}.csv"
            if ipath.is_file():
                _, irows = _rows(ipath, header=False)
                lookup = dict(zip(irows[:, 0].astype(np.int64).tolist(), irows[:, 1].tolist()))
                col = np.array([lookup.get(int(f), 9.0) for f in frames], dtype=np.float32)
                col[col == 9] = np.nan
                inten[:, j] = col
        subject, task = m.group(1), m.group(2)
        seq = root / "Sequences" / subject / task
        out.append(LabelledVideo(video_id=path.stem, subject=subject, frames=frames,
                                 au_names=tuple(map(au_name, numbers)), occurrence=occ, intensity=inten,
                                 source=seq if seq.is_dir() else None))
    return out


def read_labels(root: str | Path) -> list[LabelledVideo]:
    """DISFA or BP4D, whichever layout `root` holds."""
    root = Path(root)
    if (root / "ActionUnit_Labels").is_dir():
        return read_disfa(root)
    if (root / "AU_OCC").is_dir():
        return read_bp4d(root)
    raise FileNotFoundError(f"{root}: neither a DISFA (ActionUnit_Labels/) nor a BP4D (AU_OCC/) layout")
