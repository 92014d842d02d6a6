"""Seconds for each row of one file, from its `timestamp` column or its frame numbers.

Time (`time_source=auto`): the `timestamp` column if its values are finite, non-decreasing and
their typical step implies a rate in [min_source_fps, max_source_fps]; otherwise frame numbers
at `source_fps` (e.g. pyfeat's OpenFace_Test.csv steps 0.001 s per frame: 1000 fps, so its frames
are used); otherwise the file is an error. `resolve_time` says which was used and why.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from data.openface.reader_config import ReaderConfig


def _timestamp_problem(ts: Optional[np.ndarray], line: np.ndarray, cfg: ReaderConfig,
                       check_rate: bool) -> Optional[str]:
    if ts is None:
        return "no timestamp column"
    if not np.all(np.isfinite(ts)):
        return f"timestamp is not a number on line {int(line[~np.isfinite(ts)][0])}"
    if np.any(ts < 0):
        return f"timestamp is negative on line {int(line[ts < 0][0])}"
    step = np.diff(ts)
    if np.any(step < 0):
        return f"timestamp decreases on line {int(line[1:][step < 0][0])}"
    if ts.size > 1:
        if not np.any(step > 0):
            return "timestamp is constant"
        if not check_rate:
            return None
        typical = float(np.median(step[step > 0]))
        rate = 1.0 / typical
        if not cfg.min_source_fps <= rate <= cfg.max_source_fps:
            return (f"timestamp steps of {typical:g} s imply {rate:g} fps, outside "
                    f"[{cfg.min_source_fps:g}, {cfg.max_source_fps:g}] (min_source_fps, max_source_fps)")
    return None


def _frame_problem(frame: Optional[np.ndarray], line: np.ndarray) -> Optional[str]:
    if frame is None:
        return "no frame column"
    if not np.all(np.isfinite(frame)):
        return f"frame is not a number on line {int(line[~np.isfinite(frame)][0])}"
    step = np.diff(frame)
    if frame.size > 1 and not np.any(step != 0):
        return "frame is constant"
    if np.any(step <= 0):
        return f"frame does not increase on line {int(line[1:][step <= 0][0])}"
    return None


def resolve_time(frame: Optional[np.ndarray], timestamp: Optional[np.ndarray], line: np.ndarray,
                 cfg: ReaderConfig, path: str = "") -> tuple[np.ndarray, str, str]:
    """Seconds (n,) float64 for each row, the source used ('timestamp' | 'frame') and a note.

    Timestamps are used as written; frame-based times are (frame - first frame) / source_fps."""
    ts_problem = _timestamp_problem(timestamp, line, cfg, check_rate=cfg.time_source == "auto")
    fr_problem = _frame_problem(frame, line)
    use_ts = cfg.time_source == "timestamp" or (cfg.time_source == "auto" and ts_problem is None)
    if use_ts and ts_problem is None:
        note = f"{fr_problem} (not needed)" if fr_problem and frame is not None else ""
        return timestamp, "timestamp", note
    if not use_ts and fr_problem is None:
        note = "" if cfg.time_source == "frame" else f"{ts_problem}: using frame / source_fps ({cfg.source_fps:g})"
        return (frame - frame[0]) / cfg.source_fps, "frame", note
    problems = {"timestamp": ts_problem, "frame": fr_problem}
    tried = ["timestamp", "frame"] if cfg.time_source == "auto" else [cfg.time_source]
    why = "; ".join(problems[s] for s in tried if problems[s])
    raise ValueError(f"{path}: no usable time (time_source={cfg.time_source}): {why}")
