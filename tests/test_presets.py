"""Dataset presets (configs/ingest_<name>.yaml), each on files written in that tool's own layout, and the
generic options they rest on: `pattern`, `id_pattern`, `time_unit`, AU sets other than the 17.

The layouts were looked up, not guessed (read, never copied):
- DAIC-WOZ `NNN_P/NNN_CLNF_AUs.txt`: `frame, timestamp, confidence, success`, 14 `AUxx_r`, 6 `AUxx_c`,
  `", "` separated: ../shared/realdata/MANIFEST.md; the OpenFace wiki "Output Format" page of that era
  (timestamp ... AU01_r, AU02_r, AU04_r, AU05_r, AU06_r, AU09_r, AU10_r, AU12_r, AU14_r, AU15_r,
  AU17_r, AU20_r, AU25_r, AU26_r, AU04_c, AU12_c, AU15_c, AU23_c, AU28_c, AU45_c); the CAA dataset
  README, which ships files of the same layout; DAIC-WOZ loaders on GitHub that split lines on ","
  and strip the names, and list `NNN_CLNF_pose.txt`, `_gaze.txt`, `_features.txt` beside it.
- E-DAIC `NNN_P/features/NNN_OpenFace2.1.0_Pose_gaze_AUs.csv`: MANIFEST.md (header spacing unknown);
  E-DAIC loaders on GitHub (the folder layout; `frame, timestamp, confidence, success` in columns 0-3
  then 49 feature columns = 6 pose + 8 gaze + 17 AU_r + 18 AU_c; `usecols=lambda c: c.strip() ...`).
- LibreFace: ihp-lab/LibreFace README_pypi.rst "Output Format" (`frame_idx`, `frame_time_in_ms`,
  `lm_mp_<i>_x/y/z` for 478 landmarks, `pitch, yaw, roll`, `facial_expression`, `au_<n>` for AUs
  1 2 4 6 7 10 12 14 15 17 23 24, `au_<n>_intensity` for 1 2 4 5 6 9 12 15 17 20 25 26) and
  libreface/utils.py (times from decord in ms rounded to 3 decimals; the frame table is saved with
  pandas' `to_csv`, whose unnamed index column comes first); failed alignments leave gaps in frame_idx.
- py-feat: the real files in ../shared/realdata (skipped when absent).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from data.openface.ingest import ingest
from data.openface.reader import (DAICWOZ_AUS, DEFAULT_AUS, LIBREFACE_AUS, PRESETS, PYFEAT_AUS, TIME_UNITS,
                                  ReaderConfig, as_reader_config, au_column_name, load_video, preset)
from data.openface.ingest import IngestConfig
from ingest import main as ingest_main
from utils.cli import run_script
from utils.config import ConfigError

QUIET = {"progress": False, "workers": 1}
REPO = Path(__file__).resolve().parents[1]


def _au_values(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return np.round(np.clip(rng.normal(0.6, 1.0, (n, k)), 0, 5), 2)  # (n, k) as a tool prints them


def write_daicwoz(path: Path, n: int, seed: int) -> np.ndarray:
    """A NNN_CLNF_AUs.txt: every separator ", ", so every name after `frame` has a leading space."""
    rng = np.random.default_rng(seed)
    aus = _au_values(rng, n, 14)
    presence = ["AU04_c", "AU12_c", "AU15_c", "AU23_c", "AU28_c", "AU45_c"]
    header = ["frame", "timestamp", "confidence", "success"] + [f"{a}_r" for a in DAICWOZ_AUS] + presence
    lines = [", ".join(header)]
    for i in range(n):
        row = [str(i + 1), f"{i / 30:.6f}", "0.983333", "1"] + [f"{v:.6f}" for v in aus[i]]
        lines.append(", ".join(row + [f"{float(rng.integers(0, 2)):.6f}" for _ in presence]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return aus


def write_edaic(path: Path, n: int, seed: int, *, spaced: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    aus = _au_values(rng, n, 17)
    pose = [f"pose_{a}" for a in ("Tx", "Ty", "Tz", "Rx", "Ry", "Rz")]
    gaze = [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]
    presence = [f"{a}_c" for a in DEFAULT_AUS[:15]] + ["AU26_c", "AU28_c", "AU45_c"]
    header = ["frame", "timestamp", "confidence", "success"] + pose + gaze + [f"{a}_r" for a in DEFAULT_AUS] + presence
    sep = ", " if spaced else ","
    lines = [sep.join(header)]
    for i in range(n):
        row = [str(i + 1), f"{i / 30:.3f}", "0.98", "1"] + [f"{x:.3f}" for x in rng.normal(0, 20, 14)]
        lines.append(sep.join(row + [f"{v:.2f}" for v in aus[i]] + ["1.00" if v > 1 else "0.00" for v in aus[i]] + ["0.00"]))
    assert all(line.count(",") == len(header) - 1 for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return aus


def write_libreface(path: Path, n: int, seed: int, *, failed: range) -> tuple[np.ndarray, np.ndarray]:
    """LibreFace video CSV at 30 fps with the frames of `failed` missing (face alignment failed).
    Returns the intensities (rows written, 12) and their times in seconds."""
    rng = np.random.default_rng(seed)
    detect = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
    numbers = [int(a[2:]) for a in LIBREFACE_AUS]
    header = ["", "frame_idx", "frame_time_in_ms", "path_to_frame"]
    header += [f"lm_mp_{i}_{a}" for i in range(478) for a in "xyz"] + ["pitch", "yaw", "roll", "facial_expression"]
    header += [f"au_{d}" for d in detect] + [f"au_{a}_intensity" for a in numbers]
    kept = [i for i in range(n) if i not in failed]
    aus = _au_values(rng, len(kept), 12)
    lines = [",".join(header)]
    for row_no, i in enumerate(kept):
        row = [str(row_no), str(i), repr(round(i * 1000 / 30, 3)), f"./tmp/clip/{i:010d}.png"]
        row += [f"{x:.6f}" for x in rng.random(478 * 3)] + [f"{x:.4f}" for x in rng.normal(0, 10, 3)]
        row += [str(rng.choice(["Neutral", "Happiness", "Surprise"]))] + [str(int(rng.integers(0, 2))) for _ in detect]
        lines.append(",".join(row + [repr(float(v)) for v in aus[row_no]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return aus, np.array([round(i * 1000 / 30, 3) / 1000 for i in kept])


# --- the presets ------------------------------------------------------------------------------------

def test_every_preset_is_a_valid_ingest_config():
    for name in ("openface", "daicwoz", "edaic", "libreface", "pyfeat"):
        keys = preset(name)
        assert set(keys) <= set(IngestConfig.__dataclass_fields__), name
        ReaderConfig(**PRESETS[name])  # the reader part is a ReaderConfig
    assert PRESETS["openface"] == {} and preset("openface") == {"pattern": "*.csv"}
    assert PRESETS["daicwoz"]["au_names"] == list(DAICWOZ_AUS) and len(DAICWOZ_AUS) == 14
    assert PRESETS["libreface"]["au_names"] == list(LIBREFACE_AUS) and PRESETS["pyfeat"]["au_names"] == list(PYFEAT_AUS)
    with pytest.raises(ConfigError, match="openface, daicwoz"):
        preset("openfac")


def test_daicwoz_folder(tmp_path):
    src = tmp_path / "daic"
    expected = {pid: write_daicwoz(src / f"{pid}_P" / f"{pid}_CLNF_AUs.txt", 61, seed=pid) for pid in (303, 300)}
    for pid in (300, 303):  # the other files of a participant folder are never read
        (src / f"{pid}_P" / f"{pid}_CLNF_pose.txt").write_text("frame, timestamp, confidence, success, X\n1, 0, 0.9, 1, 3\n")
        (src / f"{pid}_P" / f"{pid}_TRANSCRIPT.csv").write_text("start_time\tstop_time\tspeaker\tvalue\n")
    corpus = ingest(src, tmp_path / "corpus", {**QUIET, **preset("daicwoz"), "fps": None})
    assert corpus.video_ids == ["300", "303"] and corpus.au_names == list(DAICWOZ_AUS)
    np.testing.assert_array_equal(corpus.frames.numpy(), np.concatenate([expected[300], expected[303]]).astype(np.float32))
    at5 = ingest(src, tmp_path / "corpus5", {**QUIET, **preset("daicwoz")})
    assert at5.offsets.tolist() == [0, 11, 22]  # 61 rows over 2 s at 30 fps -> 11 grid points each
    np.testing.assert_array_equal(at5.frames.numpy()[:11], expected[300][::6].astype(np.float32))


def test_edaic_ids_are_participants(tmp_path):
    src = tmp_path / "edaic"
    a = write_edaic(src / "600_P" / "features" / "600_OpenFace2.1.0_Pose_gaze_AUs.csv", 31, seed=1, spaced=False)
    b = write_edaic(src / "601_P" / "features" / "601_OpenFace2.1.0_Pose_gaze_AUs.csv", 31, seed=2, spaced=True)
    (src / "600_P" / "features" / "600_OpenSMILE2.3.0_mfcc.csv").write_text("name;frameTime;mfcc1\n'x';0.0;1.0\n")
    (src / "600_P" / "600_Transcript.csv").write_text("Start_Time,End_Time,Text,Confidence\n")
    corpus = ingest(src, tmp_path / "corpus", {**QUIET, **preset("edaic"), "fps": None})
    assert corpus.video_ids == ["600", "601"] and corpus.au_names == list(DEFAULT_AUS)
    np.testing.assert_array_equal(corpus.frames.numpy(), np.concatenate([a, b]).astype(np.float32))


def test_libreface_milliseconds_gaps_and_au_numbers(tmp_path):
    src = tmp_path / "libre"
    aus, seconds = write_libreface(src / "clip01.csv", 90, seed=3, failed=range(19, 35))
    cfg = {**QUIET, **preset("libreface")}
    every = load_video(src / "clip01.csv", {**PRESETS["libreface"], "fps": None})
    np.testing.assert_array_equal(every.frames, aus.astype(np.float32))
    np.testing.assert_allclose(every.timestamps, seconds, rtol=0, atol=1e-12)
    assert every.report["time_source"] == "timestamp" and every.report["source_fps"] == pytest.approx(
        (len(seconds) - 1) / (seconds[-1] - seconds[0]), abs=1e-3)  # rows per second: 74 rows over 2.967 s
    assert every.gap_before.sum() == 0  # without a grid every row is a point: no gap is claimed
    corpus = ingest(src, tmp_path / "corpus", cfg)
    assert corpus.video_ids == ["clip01"] and corpus.au_names == list(LIBREFACE_AUS)
    # 5 fps grid over 0..2.967 s: 15 points; no row lies within 0.1 s of 0.8 and 1.0 s (frames 19..34 failed)
    times = corpus.timestamps.numpy()
    assert len(times) == 13 and corpus.gap_before.numpy().tolist().count(True) == 1
    assert not np.any((times > 0.65) & (times < 1.05))
    np.testing.assert_array_equal(corpus.frames.numpy()[:4], aus[[0, 6, 12, 18]].astype(np.float32))
    # read as seconds, the same times imply 0.03 fps: not trusted, frame numbers are used instead
    as_seconds = load_video(src / "clip01.csv", {**PRESETS["libreface"], "time_unit": "s"}).report
    assert as_seconds["time_source"] == "frame" and "imply 0.03" in as_seconds["time_note"]


def test_pyfeat_preset_through_ingestion(realdata, tmp_path):
    src = realdata / "pyfeat_news_sample"
    corpus = ingest(src, tmp_path / "corpus", {**QUIET, **preset("pyfeat")})
    assert corpus.video_ids == [f"{i:03d}" for i in range(1, 21)] and corpus.au_names == list(PYFEAT_AUS)
    first = load_video(src / "001.csv", PRESETS["pyfeat"]).frames
    np.testing.assert_array_equal(corpus.frames.numpy()[:len(first)], first)


# --- the generic options ------------------------------------------------------------------------

def test_id_pattern_errors_name_the_files(tmp_path):
    src = tmp_path / "src"
    write_edaic(src / "a" / "600_x.csv", 5, seed=0, spaced=False)
    write_edaic(src / "b" / "600_y.csv", 5, seed=1, spaced=False)
    write_edaic(src / "c" / "z.csv", 5, seed=1, spaced=False)
    with pytest.raises(ValueError, match=r"b/600_y\.csv: id_pattern"):
        ingest(src, tmp_path / "o1", {**QUIET, "id_pattern": r"(\d+)_x"})
    with pytest.raises(ValueError, match=r"a/600_x\.csv and b/600_y\.csv both have video id '600'"):
        ingest(src, tmp_path / "o2", {**QUIET, "id_pattern": r"(\d+)_", "pattern": "600_*.csv"})
    named = ingest(src, tmp_path / "o3", {**QUIET, "id_pattern": r"(?P<dir>\w)/(?P<id>\w+)\.csv", "fps": None})
    assert named.video_ids == ["600_x", "600_y", "z"]
    with pytest.raises(ConfigError, match="id_pattern"):
        ingest(src, tmp_path / "o4", {**QUIET, "id_pattern": "(unclosed"})
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()  # refused before writing


def test_empty_folder_is_an_error_not_zero_files(tmp_path, capsys):
    src = tmp_path / "src"
    write_daicwoz(src / "300_P" / "300_CLNF_AUs.txt", 5, seed=0)
    with pytest.raises(SystemExit) as stop:
        run_script(ingest_main, "ingest.py", [f"src={src}", f"out={tmp_path / 'out'}", "progress=false"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "no file matches pattern='*.csv'" in err and "AUs.txt" in err and "daicwoz" in err
    assert "0 files" not in capsys.readouterr().out


def test_au_column_numbers_and_time_unit_checks():
    assert ReaderConfig(**PRESETS["libreface"]).time_unit == "ms"
    assert au_column_name("au_{n}_intensity", "AU05") == "au_5_intensity" and au_column_name("{au}_r", "AU05") == "AU05_r"
    with pytest.raises(ConfigError, match="time_unit"):
        as_reader_config({"time_unit": "min"})
    with pytest.raises(ConfigError, match="not AU<number>"):
        as_reader_config({"au_column": "au_{n}", "au_names": ["smile"]})
    with pytest.raises(ConfigError, match="au_column"):
        as_reader_config({"au_column": "{au}_{kind}"})
    assert math.isclose(TIME_UNITS["ms"], 1e-3) and TIME_UNITS["s"] == 1.0
