"""Resampling stays on the target grid and never invents frames."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from data.openface.reader import ReaderConfig, load_video
from data.openface.resample import TIME_TOL, drop_short_sequences, gap_before, grid_rows, sequence_offsets
from tests.openface_files import openface_table

steps = st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.033, 0.034, 0.04, 0.05, 0.1, 0.2, 0.25, 0.5, 1.3]),
                 min_size=0, max_size=120)
rates = st.sampled_from([1.0, 2.5, 4.0, 5.0, 10.0, 30.0])


def check_grid(t: np.ndarray, fps: float, pick: np.ndarray) -> None:
    half = 0.5 / fps + TIME_TOL
    assert pick.size == int(np.floor((t[-1] - t[0]) * fps + 1e-6)) + 1
    grid = t[0] + np.arange(pick.size) / fps
    assert grid[-1] <= t[-1] + 1e-6
    k = np.flatnonzero(pick >= 0)
    rows = pick[k]
    assert np.all(np.diff(rows) > 0)                         # distinct rows, in time order
    assert np.all(np.abs(t[rows] - grid[k]) <= half)         # each within half a step of its point
    for j in np.flatnonzero(pick < 0):                       # a missing point has no free row near it
        near = np.flatnonzero(np.abs(t - grid[j]) <= half - 2 * TIME_TOL)
        assert np.all(np.isin(near, rows)), (j, near)


@given(t0=st.floats(0, 100), steps=steps, fps=rates)
@settings(max_examples=400, deadline=None)
def test_grid_rows_property(t0, steps, fps):
    t = t0 + np.cumsum([0.0] + steps)
    pick = grid_rows(t, fps)
    check_grid(t, fps, pick)


def test_grid_rows_regular_rates():
    t30 = np.round(np.arange(301) / 30, 3)  # OpenFace prints timestamps with 3 decimals
    assert grid_rows(t30, 5.0).tolist() == list(range(0, 301, 6))
    t25 = np.round(np.arange(101) / 25, 3)
    assert grid_rows(t25, 5.0).tolist() == list(range(0, 101, 5))
    t15 = np.round(np.arange(46) / 15, 3)
    assert grid_rows(t15, 5.0).tolist() == list(range(0, 46, 3))
    # a slower source than the target leaves missing points, never repeated rows (0.5 s sits
    # between the grid points 0.4 and 0.6: the earlier takes it)
    t2 = np.arange(5) * 0.5
    assert grid_rows(t2, 5.0).tolist() == [0, -1, 1, -1, -1, 2, -1, 3, -1, -1, 4]
    # a row exactly between two grid points goes to the earlier one only
    assert grid_rows(np.array([0.0, 0.1, 0.3]), 5.0).tolist() == [0, 2]
    assert grid_rows(np.array([0.0, 0.1, 0.4]), 5.0).tolist() == [0, 1, 2]


def test_gap_helpers():
    ok = np.array([False, True, True, False, False, True, False, True, True])
    gap = gap_before(ok)
    assert gap.tolist() == [False, False, True, True, False]
    assert sequence_offsets(gap, "mark").tolist() == [0, 5]
    assert sequence_offsets(gap, "split").tolist() == [0, 2, 3, 5]
    assert drop_short_sequences(gap, 2).tolist() == [True, True, False, True, True]
    assert sequence_offsets(np.zeros(0, bool), "split").tolist() == [0]


cells = st.lists(st.tuples(st.sampled_from([0.001, 0.02, 0.033, 0.034, 0.05, 0.2, 0.45]),  # step
                           st.sampled_from(["0.98", "0.95", "0.50", "0.90", "0.00"]),        # confidence
                           st.integers(0, 499)),                                             # AU01 x 100
                  min_size=1, max_size=60)


@given(rows=cells, fps=rates, spaced=st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_load_video_never_invents_frames(tmp_path, rows, fps, spaced):
    table = openface_table(len(rows), seed=len(rows))
    t = 0.0
    for i, (step, conf, au) in enumerate(rows):
        t += step if i else 0.0
        table.set(i, "timestamp", f"{t:.3f}").set(i, "confidence", conf).set(i, "AU01_r", f"{au / 100:.2f}")
    path = table.write(tmp_path / "p.csv", spaced=spaced)
    source = table.aus()
    frames, times, gap, report = load_video(path, ReaderConfig(fps=fps, min_confidence=0.9))
    assert report["kept"] + sum(report["dropped"].values()) == report["rows_read"] == len(rows)
    if report["time_source"] == "timestamp":
        source_t = np.array([float(x) for x in table.column("timestamp")])
    else:  # steps of 0.001 s imply 1000 fps: time comes from frame numbers at 30 fps
        assert report["time_source"] == "frame" and "1000 fps" in report["time_note"]
        source_t = np.arange(len(rows)) / 30.0
    # every output frame is a distinct source row, with identical values and time
    used = []
    for frame, time in zip(frames, times):
        match = np.flatnonzero((source_t == time) & np.all(source == frame, axis=1))
        assert match.size >= 1
        used.append(int(match[0]))
        assert float(table.rows[match[0]][table.columns.index("confidence")]) >= 0.9
    assert len(set(used)) == len(used)
    # ... on the grid: each within half a step of its own grid point t0 + k / fps, k increasing
    ks, prev = [], -1
    for x in (times - source_t[0]) * fps:
        k = next((k for k in (np.ceil(x - 0.5 - 1e-6), np.floor(x + 0.5 + 1e-6)) if k > prev), None)
        assert k is not None and abs(x - k) <= 0.5 + 1e-6
        ks.append(prev := k)
    # exactly what a brute-force search gives: nearest row (earliest on a tie) within half a step,
    # unused; the grid point is missing unless that row passes the filters
    conf = np.array([float(c) for c in table.column("confidence")])
    ref_rows, ref_gap, used_rows, missing = [], [], set(), False
    for k in range(int(np.floor((source_t[-1] - source_t[0]) * fps + 1e-6)) + 1):
        g = source_t[0] + k / fps
        i = int(np.argmin(np.abs(source_t - g)))
        if abs(source_t[i] - g) <= 0.5 / fps + TIME_TOL and i not in used_rows:
            used_rows.add(i)
            if conf[i] >= 0.9:
                ref_gap.append(missing and bool(ref_rows))
                ref_rows.append(i)
                missing = False
                continue
        missing = True
    assert used == ref_rows and gap.tolist() == ref_gap
