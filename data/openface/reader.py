"""Reading one OpenFace 2.x FeatureExtraction CSV: raw rows, filtering, resampling to a target rate.

    raw = read_raw(path)                  # every data row, before filtering (RawVideo)
    frames, timestamps, gap_before, report = load_video(path, ReaderConfig())

`load_video` is what ingestion runs per file: it keeps rows with `confidence >= min_confidence`
and `success == 1`, puts them on a `fps` grid (data/resample.py) and reports, per file, rows read,
kept and dropped by reason. Every choice is a `ReaderConfig` field (configs/ingest.yaml).

Layouts read: OpenFace 2.0 (`", "` separators, so names carry leading spaces), 2.2 (no spaces),
with or without `face_id`, CRLF, no final newline, any extra column groups (columns are found by
name), a cut-off last row, `frame` constant, timestamps that do not match the frame rate, NaN or
`-nan(ind)` values and negative intensities.

Speed: frame numbers and timestamps are read for every row, the other fields only for the rows
the grid takes (1 in 6 at 30 fps). A row's field count is checked (its commas counted) whenever
its AU values are used, and the last line's always; a cut-off row elsewhere is dropped unread as
off-grid (see `load_video`).

The parts, all importable from here: data/reader_config.py (ReaderConfig, PRESETS, the AU lists),
data/csv_lines.py (CsvText: fields of chosen lines without tokenising them in full),
data/time_source.py (resolve_time: timestamps or frame numbers, `time_source=auto`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from data.openface.csv_lines import CsvText, MissingColumnsError  # noqa: F401  (re-exported)
from data.openface.reader_config import (DEFAULT_AUS, PRESETS, PYFEAT_AUS, READER_VERSION,  # noqa: F401
                                ReaderConfig, as_reader_config, reader_hash)
from data.openface.resample import drop_short_sequences, gap_before as grid_gap_before, grid_rows
from data.openface.time_source import resolve_time

# Why a row is not in the output; every row read gets exactly one reason or is kept.
DROP_REASONS = ("truncated", "malformed", "other_face", "off_grid", "failed", "low_confidence",
                "nan", "negative", "short_sequence")
_CODE = {r: i for i, r in enumerate(DROP_REASONS)}
_KEPT = len(DROP_REASONS)


def _columns(text: CsvText, cfg: ReaderConfig) -> dict[str, Optional[int]]:
    """Column index of each role; required ones missing raise MissingColumnsError."""
    roles = {"frame": cfg.frame_column, "timestamp": cfg.timestamp_column,
             "confidence": cfg.confidence_column, "success": cfg.success_column}
    au_cols = [cfg.au_column.format(au=a) for a in cfg.au_names]
    wanted = [c for c in roles.values() if c is not None] + au_cols
    idx = text.require(wanted)
    out = {role: (None if name is None else text.index(name)) for role, name in roles.items()}
    out["face_id"] = text.index(cfg.face_id_column) if cfg.face_id is not None else None
    out["aus"] = idx[len(wanted) - len(au_cols):]
    return out


# --- raw rows -------------------------------------------------------------------------------------

@dataclass
class RawVideo:
    """Every complete data row of one file, before any filtering.

    Row numbers (`line`, `truncated_rows`, `malformed_rows`) are 1-based line numbers in the file:
    the header is line 1. Rows whose field count differs from the header's are not in the arrays.
    """
    path: str
    columns: list[str]              # header names, stripped
    au_names: list[str]
    line: np.ndarray                # (n,) int64
    frame: np.ndarray               # (n,) int64 (the row index without a frame column)
    timestamp: Optional[np.ndarray]  # (n,) float64; None without a timestamp column
    confidence: np.ndarray          # (n,) float32 (1 without a confidence column; NaN unparseable)
    success: np.ndarray             # (n,) int8 (1 without a success column)
    face_id: Optional[np.ndarray]   # (n,) int64 or None
    aus: np.ndarray                 # (n, n_AU) float32, NaN where unparseable (`-nan(ind)`)
    truncated_rows: list[int]       # cut off: fewer fields than the header
    malformed_rows: list[int]       # more fields than the header

    @property
    def n_rows(self) -> int:
        return int(self.line.size)


def _frame_numbers(values: np.ndarray, text: CsvText, rows: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{text.path}: line {int(text.line_no[rows[i]])}: frame is not an integer")
    return values.astype(np.int64)


def read_raw(path: str | Path, *, au_names: Sequence[str] = DEFAULT_AUS, au_column: str = "{au}_r",
             frame_column: Optional[str] = "frame", timestamp_column: Optional[str] = "timestamp",
             confidence_column: Optional[str] = "confidence", success_column: Optional[str] = "success",
             face_id_column: Optional[str] = "face_id") -> RawVideo:
    """Every data row of the file, every field count checked. Missing columns: MissingColumnsError
    (a ValueError) naming the file and the columns. A 0-byte file gives no columns and no rows."""
    cfg = ReaderConfig(au_names=list(au_names), au_column=au_column, frame_column=frame_column,
                       timestamp_column=timestamp_column, confidence_column=confidence_column,
                       success_column=success_column, face_id_column=face_id_column)
    text = CsvText.read(path, reuse_buffer=True)
    n_au = len(cfg.au_names)
    if not text.columns:
        z = np.zeros(0)
        return RawVideo(str(path), [], list(au_names), z.astype(np.int64), z.astype(np.int64),
                        z if timestamp_column else None, z.astype(np.float32), z.astype(np.int8),
                        None, np.zeros((0, n_au), np.float32), [], [])
    col = _columns(text, cfg)
    roles = [r for r in ("frame", "timestamp", "confidence", "success", "face_id") if col[r] is not None]
    all_rows = np.arange(text.n_rows)
    values, status = text.fields(all_rows, [col[r] for r in roles] + col["aus"])
    rows = all_rows[status == 0]
    values = values[status == 0]
    get = {r: values[:, i] for i, r in enumerate(roles)}
    n = rows.size
    frame = _frame_numbers(get["frame"], text, rows) if "frame" in get else np.arange(n, dtype=np.int64)
    face = _frame_numbers(get["face_id"], text, rows) if "face_id" in get else None
    return RawVideo(
        path=str(path), columns=text.columns, au_names=list(au_names), line=text.line_no[rows],
        frame=frame, timestamp=get.get("timestamp"),
        confidence=get["confidence"].astype(np.float32) if "confidence" in get else np.ones(n, np.float32),
        success=(get["success"] == 1).astype(np.int8) if "success" in get else np.ones(n, np.int8),
        face_id=face, aus=values[:, len(roles):].astype(np.float32),
        truncated_rows=text.line_no[all_rows[status < 0]].tolist(),
        malformed_rows=text.line_no[all_rows[status > 0]].tolist())


# --- one video ------------------------------------------------------------------------------------

class VideoFrames(NamedTuple):
    frames: np.ndarray       # (n, n_AU) float32
    timestamps: np.ndarray   # (n,) float64 seconds
    gap_before: np.ndarray   # (n,) bool: missing grid points between the previous frame and this one
    report: dict


def new_report(path: str) -> dict:
    return {"file": path, "rows_read": 0, "kept": 0, "dropped": {r: 0 for r in DROP_REASONS},
            "negative_values": 0, "negative_policy": None, "grid_points": 0, "missing_grid_points": 0,
            "gaps": 0, "sequences": 0, "time_source": None, "source_fps": None, "time_note": "",
            "truncated_lines": [], "malformed_lines": [], "n_columns": 0, "empty": False, "error": None}


def _empty(n_au: int, report: dict) -> VideoFrames:
    return VideoFrames(np.zeros((0, n_au), np.float32), np.zeros(0), np.zeros(0, bool), report)


def load_video(path: str | Path, cfg: Any = None) -> VideoFrames:
    """Kept frames of one file on the target grid, with the per-file report.

    Rows are dropped in this order, each with one reason: a cut-off (`truncated`) or overlong
    (`malformed`) line, another face (`other_face`), not taken by the grid (`off_grid`), then for
    the grid's rows `failed` (success != 1), `low_confidence`, `nan` (any AU not a number),
    `negative` (with negative=drop) and, with on_gap=split, `short_sequence`. So `rows_read` equals
    `kept` plus the sum of `dropped`. A cut-off line that the grid skips anyway is counted as
    `off_grid` (it is not read), except the last line, which is always checked.

    Raises ValueError (naming the file) for missing columns or no usable time.
    """
    cfg = as_reader_config(cfg)
    report = new_report(str(path))
    report["negative_policy"] = cfg.negative
    n_au = len(cfg.au_names)
    text = CsvText.read(path, reuse_buffer=True)  # dropped before returning
    report["n_columns"] = text.n_fields
    if not text.columns:
        report["empty"] = True
        return _empty(n_au, report)
    col = _columns(text, cfg)
    n = text.n_rows
    report["rows_read"] = n
    if n == 0:
        report["empty"] = True
        return _empty(n_au, report)

    reason = np.full(n, -1, dtype=np.int8)  # -1 undecided, else _CODE / _KEPT

    def mark(rows, status):
        reason[rows[status < 0]] = _CODE["truncated"]
        reason[rows[status > 0]] = _CODE["malformed"]

    last = np.array([n - 1])
    mark(last, text.fields(last, [0])[1])  # a writer killed mid-row leaves the last line cut off
    scan_roles = [r for r in ("frame", "timestamp", "face_id") if col[r] is not None]
    scanned, short = text.scan([col[r] for r in scan_roles])
    reason[short & (reason < 0)] = _CODE["truncated"]
    got = {r: scanned[:, i] for i, r in enumerate(scan_roles)}
    times = [got[r] for r in ("frame", "timestamp") if r in got]
    if times:  # a line with no readable time at all is malformed: dropped and listed, not fatal to the file
        reason[np.all([~np.isfinite(t) for t in times], axis=0) & (reason < 0)] = _CODE["malformed"]
    if "face_id" in got:
        reason[(got["face_id"] != cfg.face_id) & (reason < 0)] = _CODE["other_face"]
    timeline = np.flatnonzero(reason != _CODE["other_face"])  # this face's rows, cut-off ones too
    alive = np.flatnonzero(reason < 0)
    if alive.size == 0:
        return _finish(reason, np.zeros(0, bool), np.zeros((0, n_au), np.float32), np.zeros(0), text, cfg, report)

    frame = got["frame"][alive] if "frame" in got else alive.astype(np.float64)
    t, report["time_source"], report["time_note"] = resolve_time(
        frame, got["timestamp"][alive] if "timestamp" in got else None, text.line_no[alive], cfg, str(path))
    if t.size > 1 and t[-1] > t[0]:  # mean rate over the file: exact for regular ms-rounded times
        report["source_fps"] = round((t.size - 1) / float(t[-1] - t[0]), 3)
    if cfg.fps is not None:
        pick = grid_rows(t, cfg.fps)                           # (K,) index into alive, -1 none
        point_row = np.where(pick >= 0, alive[np.maximum(pick, 0)], -1)
        point_time = np.where(pick >= 0, t[np.maximum(pick, 0)], np.nan)
        taken = np.zeros(n, dtype=bool)
        taken[point_row[point_row >= 0]] = True
        reason[(reason < 0) & ~taken] = _CODE["off_grid"]
    else:  # every row of the face is a point; cut-off rows are missing points
        point_row = np.where(reason[timeline] < 0, timeline, -1)
        time_of = np.full(n, np.nan)
        time_of[alive] = t
        point_time = time_of[timeline]
    rows = point_row[point_row >= 0]                           # (P,) grid order, distinct

    # The grid's rows: AU fields with each line's field count checked, confidence and success.
    aus, status = text.fields(rows, col["aus"])
    mark(rows, status)
    _check_range(aus, rows, text, cfg)
    role_cols = [c for c in (col["confidence"], col["success"]) if c is not None]
    roles = text.scan(role_cols, rows)[0]
    conf = roles[:, 0] if col["confidence"] is not None else np.ones(rows.size)
    success = roles[:, -1] if col["success"] is not None else np.ones(rows.size)
    fresh = reason[rows] < 0
    checks = [("failed", (success != 1) if cfg.require_success else np.zeros(rows.size, bool)),
              ("low_confidence", ~(conf >= cfg.min_confidence)),
              ("nan", ~np.all(np.isfinite(aus), axis=1)),
              ("negative", np.any(aus < 0, axis=1) if cfg.negative == "drop" else np.zeros(rows.size, bool))]
    for name, bad in checks:
        hit = fresh & bad
        reason[rows[hit]] = _CODE[name]
        fresh &= ~hit
    reason[rows[fresh]] = _KEPT

    ok = np.zeros(point_row.size, dtype=bool)
    ok[point_row >= 0] = reason[rows] == _KEPT                 # per grid point: has a kept row
    report["grid_points"] = int(point_row.size)
    report["missing_grid_points"] = int(point_row.size - ok.sum())
    frames = aus[fresh].astype(np.float32)                     # (n_kept, n_AU), grid order
    return _finish(reason, ok, frames, point_time[ok], text, cfg, report)


def _check_range(aus: np.ndarray, rows: np.ndarray, text: CsvText, cfg: ReaderConfig) -> None:
    """A finite value outside `au_range` is not an intensity (a flipped byte, another tool's column)."""
    lo, hi = cfg.au_range
    bad = np.isfinite(aus) & ((aus < lo) | (aus > hi))
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise ValueError(f"{text.path}: line {int(text.line_no[rows[i]])}: {cfg.au_column.format(au=cfg.au_names[j])} = "
                         f"{aus[i, j]:g} is outside au_range [{lo:g}, {hi:g}] ({int(bad.any(1).sum())} such rows); "
                         f"the file is damaged, or widen au_range")


def _finish(reason, ok, frames, times, text: CsvText, cfg: ReaderConfig, report: dict) -> VideoFrames:
    gap = grid_gap_before(ok)
    if cfg.on_gap == "split" and cfg.min_sequence_frames > 1 and gap.size:
        keep = drop_short_sequences(gap, cfg.min_sequence_frames)
        kept_rows = np.flatnonzero(reason == _KEPT)  # row order is grid order
        reason[kept_rows[~keep]] = _CODE["short_sequence"]
        frames, times, gap = frames[keep], times[keep], gap[keep]
        if gap.size:
            gap[0] = False
    negative = frames < 0
    report["negative_values"] = int(negative.sum())
    if cfg.negative == "clip":
        frames[negative] = 0.0
    counts = np.bincount(reason[reason >= 0], minlength=_KEPT + 1)
    report["kept"] = int(counts[_KEPT])
    report["dropped"] = {r: int(counts[_CODE[r]]) for r in DROP_REASONS}
    report["truncated_lines"] = text.line_no[reason == _CODE["truncated"]].tolist()
    report["malformed_lines"] = text.line_no[reason == _CODE["malformed"]].tolist()   # too many fields, or no time
    report["gaps"] = int(gap.sum())
    report["sequences"] = (int(gap.sum()) + 1 if cfg.on_gap == "split" else 1) if gap.size else 0
    return VideoFrames(frames, np.asarray(times, dtype=np.float64), gap, report)
