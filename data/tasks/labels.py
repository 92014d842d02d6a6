"""Per-video labels: `labels.csv` with columns video_id, subject, split, then one column per target."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REQUIRED = ("video_id", "subject")


@dataclass
class LabelTable:
    video_ids: list[str]
    subjects: list[str]
    splits: list[str]
    targets: dict[str, np.ndarray]  # target name -> (n_videos,) float64
    path: str = "labels"

    def __post_init__(self):
        self.row_of = {v: i for i, v in enumerate(self.video_ids)}

    @property
    def target_names(self) -> list[str]:
        return list(self.targets)

    def rows_for(self, video_ids: list[str]) -> np.ndarray:
        """Row index of each video id; an id without a label is an error naming it."""
        missing = [v for v in video_ids if v not in self.row_of]
        if missing:
            raise KeyError(f"{self.path}: no label for {len(missing)} video(s), e.g. {missing[:3]}")
        return np.array([self.row_of[v] for v in video_ids], dtype=np.int64)

    def matrix(self, names: list[str]) -> np.ndarray:
        """(n_videos, len(names)) float64 targets; an unknown name is an error listing the known ones."""
        unknown = [n for n in names if n not in self.targets]
        if unknown:
            raise KeyError(f"{self.path}: unknown target(s) {unknown}; columns are {self.target_names}")
        return np.stack([self.targets[n] for n in names], axis=1)


def read_labels(path: str | Path) -> LabelTable:
    """The one reader of labels.csv; every problem names the file (and the line and column)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file {path} does not exist" if not path.exists() else f"{path}: not a file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing} (header: {header[:8]})")
            if len(set(header)) != len(header):
                raise ValueError(f"{path}: column name(s) repeated in the header: "
                                 f"{sorted({h for h in header if header.count(h) > 1})}")
            rows = []
            for r in reader:
                if None in r or None in r.values():  # more or fewer cells than the header
                    raise ValueError(f"{path}, line {reader.line_num}: {len(r) - (None in r)} columns expected, "
                                     f"the row has {'more' if None in r else 'fewer'}")
                rows.append({k.strip(): v.strip() for k, v in r.items()})
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: not a labels table (not UTF-8 CSV text: {type(err).__name__})") from None
    target_cols = [h for h in header if h not in (*REQUIRED, "split")]
    targets = {c: np.empty(len(rows)) for c in target_cols}
    seen = set()
    for i, row in enumerate(rows):
        line = i + 2  # 1-based, after the header
        if row["video_id"] in seen:
            raise ValueError(f"{path}, line {line}: duplicate video_id {row['video_id']!r}")
        seen.add(row["video_id"])
        for c in target_cols:
            try:
                targets[c][i] = float(row[c])
            except ValueError:
                raise ValueError(f"{path}, line {line}, column {c}: {row[c]!r} is not a number") from None
            if not np.isfinite(targets[c][i]):
                raise ValueError(f"{path}, line {line}, column {c}: value is not finite")
    return LabelTable(video_ids=[r["video_id"] for r in rows], subjects=[r["subject"] for r in rows],
                      splits=[r.get("split", "") or "all" for r in rows], targets=targets, path=str(path))
