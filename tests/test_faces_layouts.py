"""Readers of the real label layouts (DISFA, BP4D), image folders and videos, on files written by hand
in those exact layouts; the renderer's writers round-trip through the same readers."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faces.layouts import (BP4D_OCC_AUS, DISFA_AUS, read_bp4d, read_disfa, read_labels, write_bp4d,
                           write_disfa)
from faces.video import read_all, read_frames, write_video


def _disfa(root, sub="SN001", n=5, bad=None):
    folder = root / "ActionUnit_Labels" / sub
    folder.mkdir(parents=True)
    for j, au in enumerate(DISFA_AUS):
        lines = [f"{f},{(f + j) % 6}" for f in range(1, n + 1)]
        if bad and au == bad[0]:
            lines[bad[1]] = "3,x"
        (folder / f"{sub}_au{au}.txt").write_text("\n".join(lines) + "\n")
    video = root / "Videos_LeftCamera" / f"LeftVideo{sub}_comp.avi"
    video.parent.mkdir(exist_ok=True)
    video.write_bytes(b"")
    return video


def test_disfa_reader_is_exact(tmp_path):
    video = _disfa(tmp_path, n=5)
    (v,) = read_disfa(tmp_path)
    assert v.video_id == v.subject == "SN001" and v.source == video
    assert v.frames.tolist() == [1, 2, 3, 4, 5]
    assert v.au_names == tuple(f"AU{a:02d}" for a in DISFA_AUS)
    expect = np.array([[(f + j) % 6 for j in range(12)] for f in range(1, 6)], dtype=np.float32)
    np.testing.assert_array_equal(v.intensity, expect)
    np.testing.assert_array_equal(v.occurrence, (expect >= 2).astype(np.float32))  # positive = intensity >= 2


def test_disfa_reader_names_the_bad_line(tmp_path):
    _disfa(tmp_path, n=5, bad=(9, 2))
    with pytest.raises(ValueError, match=r"SN001_au9\.txt, line 3"):
        read_disfa(tmp_path)


def test_bp4d_reader_is_exact_with_unlabelled_nines(tmp_path):
    occ = tmp_path / "AU_OCC"
    occ.mkdir()
    header = "0," + ",".join(map(str, BP4D_OCC_AUS))
    rows = [[10, 1, 0, 9, 1, 0, 0, 1, 0, 0, 1, 0, 9], [11, 0, 0, 1, 1, 9, 0, 1, 0, 0, 0, 0, 9]]
    (occ / "F001_T1.csv").write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    (tmp_path / "AU_INT" / "AU06").mkdir(parents=True)
    (tmp_path / "AU_INT" / "AU06" / "F001_T1_AU06.csv").write_text("10,3\n11,9\n")
    seq = tmp_path / "Sequences" / "F001" / "T1"
    seq.mkdir(parents=True)
    (v,) = read_bp4d(tmp_path)
    assert (v.video_id, v.subject, v.source) == ("F001_T1", "F001", seq)
    assert v.frames.tolist() == [10, 11]
    expect = np.array([r[1:] for r in rows], dtype=np.float32)
    expect[expect == 9] = np.nan
    np.testing.assert_array_equal(v.occurrence, expect)
    au6 = v.au_names.index("AU06")
    assert v.intensity[0, au6] == 3 and np.isnan(v.intensity[1, au6])       # 9 = invalid intensity
    assert np.isnan(v.intensity[:, v.au_names.index("AU01")]).all()         # no intensity file
    (occ / "F001_T1.csv").write_text(header + "\n10,1,0,2,1,0,0,1,0,0,1,0,9\n")
    with pytest.raises(ValueError, match=r"F001_T1\.csv, line 2, column 4: 2 is not 0, 1 or 9"):
        read_bp4d(tmp_path)


def test_writers_round_trip_through_the_readers(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 5, (7, 12))
    write_disfa(tmp_path / "d", "SN004", truth)
    (v,) = read_labels(tmp_path / "d")
    np.testing.assert_array_equal(v.intensity, np.rint(truth).astype(np.float32))
    aus = {au: rng.uniform(0, 5, 7) for au in (1, 2, 4, 6, 12)}
    write_bp4d(tmp_path / "b", "M002", "T1", aus)
    (b,) = read_labels(tmp_path / "b")
    for j, au in enumerate(BP4D_OCC_AUS):
        want = (aus[au] >= 1.0).astype(np.float32) if au in aus else np.full(7, np.nan, np.float32)
        np.testing.assert_array_equal(b.occurrence[:, j], want)
    np.testing.assert_array_equal(b.intensity[:, b.au_names.index("AU06")], np.rint(aus[6]))
    with pytest.raises(FileNotFoundError, match="neither a DISFA"):
        read_labels(tmp_path)


def test_image_folder_frames_in_frame_number_order(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    for name, f in zip(("img2.png", "img10.png", "img1.png"), (frames[1], frames[2], frames[0])):
        cv2.imwrite(str(tmp_path / name), f[..., ::-1])          # PNG: lossless, OpenCV writes BGR
    got = list(read_frames(tmp_path))
    np.testing.assert_array_equal(np.stack(got), frames)


def test_video_write_then_read(tmp_path):
    t = np.linspace(0, 1, 64)
    frames = np.stack([np.broadcast_to((255 * np.outer(t, t) * (0.5 + 0.5 * i / 9))[..., None], (64, 64, 3))
                       for i in range(10)]).astype(np.uint8)
    path = write_video(tmp_path / "LeftVideoSN001_comp.avi", frames, fps=20.0)
    got = read_all(path)
    assert got.shape == frames.shape
    assert np.abs(got.astype(int) - frames.astype(int)).mean() < 4      # lossy codec, smooth content
    with pytest.raises(FileNotFoundError):
        next(read_frames(tmp_path / "missing.avi"))
