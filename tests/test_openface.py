"""The OpenFace reader: real files from ../shared/realdata and files written cell by cell."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from data.openface.reader import (DEFAULT_AUS, PRESETS, PYFEAT_AUS, MissingColumnsError,
                           ReaderConfig, as_reader_config, load_video, read_raw)
from tests.conftest import REPO
from tests.openface_files import openface_table
from utils.config import ConfigError

# file: (frames as MANIFEST.md counts them, time source). Every other count the tests expect is
# derived from the file's text by the plain readers below, never recorded from the reader's output.
REAL = {
    "emoinfer_changeLighting.csv":  (88, "timestamp"),
    "emoinfer_default.csv":         (288, "timestamp"),
    "facsvatar_demo_faceid.csv":    (490, "timestamp"),
    "facsvatar_demo_v2018-03.csv":  (490, "timestamp"),
    "facsvatar_head_test.csv":      (715, "timestamp"),
    "facsvatar_jt.csv":             (474, "timestamp"),   # + 1 cut-off row (MANIFEST.md)
    "openfacer_lara_core.csv":      (2203, "timestamp"),
    "openfacer_teddy_core.csv":     (3281, "timestamp"),
    # timestamps step 0.001 s (1000 fps): time from frames at 30 fps; 99 of 100 rows have confidence 0.883
    "pyfeat_OpenFace_Test.csv":     (100, "frame"),
}


def cut_lines(path: Path) -> list[int]:
    """1-based line numbers of non-empty rows with fewer fields than the header."""
    lines = path.read_bytes().decode().replace("\r\n", "\n").split("\n")
    width = len(lines[0].split(","))
    return [n + 1 for n, ln in enumerate(lines) if n and ln.strip() and len(ln.split(",")) < width]


def usable(header: list[str], row: list[str], min_confidence: float = 0.9) -> bool:
    """success = 1, confidence >= min_confidence and every AU a finite number."""
    aus = [float(row[header.index(f"{a}_r")]) for a in DEFAULT_AUS]
    return (float(row[header.index("success")]) == 1 and float(row[header.index("confidence")]) >= min_confidence
            and bool(np.all(np.isfinite(aus))))


def text_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Independent reference: the file split on commas, complete rows only."""
    lines = path.read_bytes().decode().replace("\r\n", "\n").split("\n")
    header = [c.strip() for c in lines[0].split(",")]
    rows = [ln.split(",") for ln in lines[1:] if ln.strip()]
    return header, [r for r in rows if len(r) == len(header)]


def reference_frames(path: Path, *, fps: float = 5.0, min_confidence: float = 0.9, source_fps=None):
    """Brute-force resampling of the text: nearest complete row to each grid point within half a
    step, used once; kept if usable (above). Returns the kept frames, their times, the number of grid
    points and how many grid points fell on an unusable row."""
    header, rows = text_rows(path)
    col = lambda name: [float(r[header.index(name)]) for r in rows]
    t = np.array(col("timestamp")) if source_fps is None else (np.array(col("frame")) - col("frame")[0]) / source_fps
    aus = np.array([[np.float32(float(r[header.index(f"{a}_r")])) for a in DEFAULT_AUS] for r in rows])
    out, times, used, k, dropped = [], [], set(), 0, 0
    while t[0] + k / fps <= t[-1] + 1e-9:
        g = t[0] + k / fps
        i = int(np.argmin(np.abs(t - g)))  # first minimum: the earlier row on a tie
        if abs(t[i] - g) <= 0.5 / fps + 1e-9 and i not in used:
            used.add(i)
            if usable(header, rows[i], min_confidence):
                out.append(aus[i])
                times.append(t[i])
            else:
                dropped += 1
        k += 1
    return np.array(out, dtype=np.float32).reshape(-1, 17), np.array(times), k, dropped


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_openface_files(realdata, name):
    """Expected values from the file's text alone: MANIFEST.md's frame count, the cut-off lines,
    usable rows, and the brute-force resampling of `reference_frames`."""
    rows, source = REAL[name]
    path = realdata / name
    cut = cut_lines(path)
    header, text = text_rows(path)
    ref, ref_times, grid, low = reference_frames(path, source_fps=30.0 if source == "frame" else None)
    kept, kept_all = len(ref), sum(usable(header, r) for r in text)
    assert len(cut) == (name == "facsvatar_jt.csv")                   # MANIFEST.md: only jt has a cut-off row
    raw = read_raw(path)
    assert raw.n_rows == rows and raw.truncated_rows == cut and raw.malformed_rows == []
    assert raw.aus.shape == (rows, 17) and raw.aus.dtype == np.float32 and np.all(np.isfinite(raw.aus))

    # AU values and the leading fields against the file's text, for a few rows
    assert raw.columns == header and len(text) == rows
    for i in (0, 1, rows // 2, rows - 1):
        cells = text[i]
        want = [np.float32(float(cells[header.index(f"{a}_r")])) for a in DEFAULT_AUS]
        assert raw.aus[i].tolist() == want, (name, i)
        assert raw.timestamp[i] == float(cells[header.index("timestamp")])
        assert raw.confidence[i] == np.float32(float(cells[header.index("confidence")]))
        assert raw.frame[i] == int(cells[0]) and raw.success[i] == 1

    frames, times, gap, report = load_video(path)
    assert report["rows_read"] == rows + len(cut)
    assert report["kept"] == kept == len(frames) == len(times) == len(gap)
    assert report["grid_points"] == grid and report["dropped"]["low_confidence"] == low
    assert report["dropped"]["truncated"] == len(cut) and report["truncated_lines"] == cut
    assert report["kept"] + sum(report["dropped"].values()) == report["rows_read"]
    assert report["time_source"] == source and report["error"] is None

    np.testing.assert_array_equal(frames, ref)
    np.testing.assert_array_equal(times, ref_times)

    assert load_video(path, ReaderConfig(fps=None)).report["kept"] == kept_all


def test_real_truncated_row_is_reported_not_fatal(realdata):
    report = load_video(realdata / "facsvatar_jt.csv").report
    assert report["truncated_lines"] == [476] and report["dropped"]["truncated"] == 1
    assert report["time_note"] == "frame is constant (not needed)"  # every frame number is 0
    full = load_video(realdata / "facsvatar_jt.csv", ReaderConfig(fps=None))
    assert full.report["dropped"]["truncated"] == 1 and full.report["kept"] == 473


def test_real_timestamps_off_the_frame_rate(realdata):
    path = realdata / "pyfeat_OpenFace_Test.csv"
    report = load_video(path).report
    assert report["time_source"] == "frame" and "1000 fps" in report["time_note"]
    frames, times, gap, report = load_video(path, ReaderConfig(min_confidence=0.8))
    assert len(frames) == 17 and report["source_fps"] == 30.0
    np.testing.assert_allclose(times, np.arange(17) * 0.2, atol=1e-12)  # frames 1, 7, ..., 97
    raw = read_raw(path)
    np.testing.assert_array_equal(frames, raw.aus[::6])
    # forcing the timestamps squeezes the 100 rows into 0.099 s: one frame, and the report says so
    forced = load_video(path, ReaderConfig(min_confidence=0.8, time_source="timestamp"))
    assert len(forced.frames) == 1 and forced.report["time_source"] == "timestamp"


PYFEAT = {"pyfeat_Fex_v1_001.csv": (40, 7), "pyfeat_Feat_Test.csv": (1, 1),
          "pyfeat_news_sample/001.csv": (20, 7), "pyfeat_news_sample/002.csv": (14, 5)}


@pytest.mark.parametrize("name", sorted(PYFEAT))
def test_pyfeat_files(realdata, name):
    path = realdata / name
    with pytest.raises(MissingColumnsError) as err:
        read_raw(path)
    assert str(path) in str(err.value) and "AU01_r" in err.value.missing and "timestamp" in err.value.missing
    assert "AU45_r" in str(err.value) and "ingest_pyfeat.yaml" in str(err.value)
    with pytest.raises(ValueError):
        load_video(path)

    rows, kept = PYFEAT[name]
    cfg = ReaderConfig(**PRESETS["pyfeat"])
    raw = read_raw(path, **{k: v for k, v in PRESETS["pyfeat"].items()})
    assert raw.n_rows == rows and raw.aus.shape == (rows, 20) and raw.timestamp is None
    header, text = text_rows(path)
    for i in (0, rows - 1):
        assert raw.aus[i].tolist() == [np.float32(float(text[i][header.index(a)])) for a in PYFEAT_AUS]
        assert raw.confidence[i] == np.float32(float(text[i][header.index("FaceScore")]))
    assert np.all((raw.aus >= 0) & (raw.aus <= 1))  # probabilities, not 0-5 intensities
    frames, times, gap, report = load_video(path, cfg)
    assert len(frames) == kept and report["time_source"] == "frame"
    assert "no timestamp column" in report["time_note"]


def test_pyfeat_yaml_is_the_preset():
    yaml = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "ingest_pyfeat.yaml"))
    assert yaml == PRESETS["pyfeat"]


def test_default_yaml_matches_the_schema():
    yaml = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "ingest.yaml"))
    defaults = as_reader_config(ReaderConfig())
    for key, value in vars(defaults).items():
        assert yaml[key] == value, key
    assert tuple(yaml["au_names"]) == DEFAULT_AUS


# --- files written by the tests -------------------------------------------------------------------

def test_failed_frames(tmp_path):
    table = openface_table(30)
    for i in (3, 4):
        table.set(i, "success", "0").set(i, "confidence", "0.00")
    path = table.write(tmp_path / "f.csv")
    frames, times, gap, report = load_video(path, ReaderConfig(fps=None))
    assert report["kept"] == 28 and report["dropped"]["failed"] == 2 and report["dropped"]["low_confidence"] == 0
    np.testing.assert_array_equal(frames, np.delete(table.aus(), [3, 4], axis=0))
    assert np.flatnonzero(gap).tolist() == [3] and report["gaps"] == 1 and report["sequences"] == 1
    # on the 5 fps grid (rows 0, 6, 12, 18, 24) a failed grid row is a missing point
    table.set(12, "success", "0")
    frames, times, gap, report = load_video(table.write(tmp_path / "g.csv"))
    assert report["kept"] == 4 and report["dropped"]["failed"] == 1 and report["dropped"]["off_grid"] == 25
    assert gap.tolist() == [False, False, True, False] and report["missing_grid_points"] == 1
    np.testing.assert_array_equal(frames, table.aus()[[0, 6, 18, 24]])
    assert read_raw(path).success.tolist() == [1, 1, 1, 0, 0] + [1] * 25


def test_nan_values(tmp_path):
    table = openface_table(12).set(2, "AU04_r", "-nan(ind)").set(5, "AU45_r", "nan").set(7, "AU12_r", "")
    path = table.write(tmp_path / "n.csv", spaced=True)
    raw = read_raw(path)
    assert raw.n_rows == 12 and np.isnan(raw.aus[2, 2]) and np.isnan(raw.aus[5, 16]) and np.isnan(raw.aus[7, 8])
    assert int(np.isnan(raw.aus).sum()) == 3
    frames, times, gap, report = load_video(path, ReaderConfig(fps=None))
    assert report["kept"] == 9 and report["dropped"]["nan"] == 3
    np.testing.assert_array_equal(frames, np.delete(raw.aus, [2, 5, 7], axis=0))


def test_negative_values(tmp_path):
    table = openface_table(6).set(1, "AU01_r", "-0.50").set(1, "AU02_r", "-0.01").set(4, "AU26_r", "-1.20")
    path = table.write(tmp_path / "neg.csv")
    frames, _, _, report = load_video(path, ReaderConfig(fps=None))
    assert report["kept"] == 6 and report["negative_values"] == 3 and report["negative_policy"] == "clip"
    assert frames[1, 0] == 0 and frames[1, 1] == 0 and frames[4, 15] == 0 and frames.min() == 0
    frames, _, _, report = load_video(path, ReaderConfig(fps=None, negative="keep"))
    assert report["negative_values"] == 3 and frames[1, 0] == np.float32(-0.5) and frames[4, 15] == np.float32(-1.2)
    frames, _, _, report = load_video(path, ReaderConfig(fps=None, negative="drop"))
    assert report["kept"] == 4 and report["dropped"]["negative"] == 2 and report["negative_values"] == 0


def test_missing_columns_name_the_file_and_columns(tmp_path):
    table = openface_table(5)
    keep = [i for i, c in enumerate(table.columns) if c not in ("AU12_r", "confidence")]
    table.columns = [table.columns[i] for i in keep]
    table.rows = [[r[i] for i in keep] for r in table.rows]
    path = table.write(tmp_path / "cols.csv")
    for read in (read_raw, load_video):
        with pytest.raises(ValueError) as err:
            read(path)
        assert str(path) in str(err.value) and "AU12_r" in str(err.value) and "confidence" in str(err.value)
    assert isinstance(err.value, MissingColumnsError) and err.value.missing == ["confidence", "AU12_r"]
    # a column the config does not ask for may be absent
    frames, *_ = load_video(path, ReaderConfig(confidence_column=None, au_names=["AU01", "AU45"], fps=None))
    assert frames.shape == (5, 2)


def test_empty_files(tmp_path):
    zero = tmp_path / "zero.csv"
    zero.write_bytes(b"")
    header_only = openface_table(0).write(tmp_path / "header.csv")
    for path in (zero, header_only):
        frames, times, gap, report = load_video(path)
        assert frames.shape == (0, 17) and times.shape == (0,) and gap.shape == (0,)
        assert report["empty"] and report["rows_read"] == 0 and report["kept"] == 0 and report["error"] is None
        assert report["sequences"] == 0
        assert read_raw(path).n_rows == 0


def test_header_variants_read_the_same(tmp_path):
    table = openface_table(40, seed=3)
    base = load_video(table.write(tmp_path / "plain.csv"))
    assert base.report["kept"] == 7
    variants = {
        "spaced_crlf": dict(spaced=True, crlf=True),
        "no_final_newline": dict(final_newline=False),
        "spaced_crlf_no_newline": dict(spaced=True, crlf=True, final_newline=False),
    }
    for name, kw in variants.items():
        got = load_video(table.write(tmp_path / f"{name}.csv", **kw))
        np.testing.assert_array_equal(got.frames, base.frames, err_msg=name)
        np.testing.assert_array_equal(got.timestamps, base.timestamps, err_msg=name)
    for face_id, layout in ((False, "core"), (True, "gaze"), (True, "full"), (False, "full")):
        other = openface_table(40, seed=3, face_id=face_id, layout=layout)
        for name in ("timestamp", "confidence", "success") + tuple(f"{a}_r" for a in DEFAULT_AUS):
            for i, text in enumerate(table.column(name)):
                other.set(i, name, text)
        got = load_video(other.write(tmp_path / f"{layout}{face_id}.csv", spaced=True))
        np.testing.assert_array_equal(got.frames, base.frames, err_msg=layout)
        assert got.report["n_columns"] == len(other.columns)
    assert got.report["n_columns"] == 713
    # blank lines in the middle and at the end are skipped; row numbers stay file lines
    path = tmp_path / "blank.csv"
    lines = (tmp_path / "plain.csv").read_text().split("\n")
    path.write_text("\n".join(lines[:10] + [""] + lines[10:]) + "\n\n")
    assert np.array_equal(load_video(path).frames, base.frames)
    raw = read_raw(path)
    assert raw.n_rows == 40 and raw.line[8] == 10 and raw.line[9] == 12


def test_cut_off_last_row(tmp_path):
    table = openface_table(31)
    path = table.write(tmp_path / "cut.csv", spaced=True, crlf=True, final_newline=False, cut_last=20)
    raw = read_raw(path)
    assert raw.n_rows == 30 and raw.truncated_rows == [32]
    for fps in (5.0, None):  # row 30 (t = 1.0 s) would be a grid row: it is a missing point instead
        frames, times, gap, report = load_video(path, ReaderConfig(fps=fps))
        assert report["truncated_lines"] == [32] and report["dropped"]["truncated"] == 1
        assert report["rows_read"] == 31 and report["kept"] == (5 if fps else 30)
        assert report["kept"] + sum(report["dropped"].values()) == 31
    # a row with an extra field is malformed, and dropped the same way
    table = openface_table(7)
    table.rows[6] = table.rows[6] + ["1.0"]
    frames, _, _, report = load_video(table.write(tmp_path / "extra.csv"), ReaderConfig(fps=None))
    assert report["dropped"]["malformed"] == 1 and report["kept"] == 6
    assert read_raw(tmp_path / "extra.csv").malformed_rows == [8]
    # a cut-off row in the middle is checked when the grid reads it
    table = openface_table(13)
    table.rows[6] = table.rows[6][:20]
    frames, _, gap, report = load_video(table.write(tmp_path / "mid.csv"))
    assert report["dropped"]["truncated"] == 1 and report["kept"] == 2 and gap.tolist() == [False, True]


def test_time_sources(tmp_path):
    table = openface_table(26, fps=25.0)
    for i in range(26):
        table.set(i, "frame", "0")
    frames, times, _, report = load_video(table.write(tmp_path / "const.csv"))
    assert report["time_source"] == "timestamp" and report["kept"] == 6 and report["source_fps"] == 25.0
    np.testing.assert_allclose(times, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    for i in range(26):
        table.set(i, "timestamp", "0.000")
    with pytest.raises(ValueError) as err:
        load_video(table.write(tmp_path / "none.csv"))
    assert "none.csv" in str(err.value) and "timestamp is constant" in str(err.value) and "frame is constant" in str(err.value)
    # timestamps that go backwards: frames are used, and the report says why
    table = openface_table(13)
    table.set(5, "timestamp", "0.010")
    frames, times, _, report = load_video(table.write(tmp_path / "back.csv"))
    assert report["time_source"] == "frame" and "decreases on line 7" in report["time_note"]
    with pytest.raises(ValueError, match="time_source=timestamp"):
        load_video(tmp_path / "back.csv", ReaderConfig(time_source="timestamp"))
    assert load_video(tmp_path / "back.csv", ReaderConfig(time_source="frame")).report["kept"] == 3


def test_confidence_threshold_is_inclusive(tmp_path):
    table = openface_table(4).set(1, "confidence", "0.90").set(2, "confidence", "0.89")
    frames, _, _, report = load_video(table.write(tmp_path / "c.csv"), ReaderConfig(fps=None))
    assert report["kept"] == 3 and report["dropped"]["low_confidence"] == 1
    raw = read_raw(tmp_path / "c.csv")
    assert raw.confidence.dtype == np.float32 and raw.confidence[1] == np.float32(0.9)


def test_other_faces_are_dropped(tmp_path):
    table = openface_table(8)
    for i in (2, 5):
        table.set(i, "face_id", "1")
    frames, _, gap, report = load_video(table.write(tmp_path / "m.csv"), ReaderConfig(fps=None))
    assert report["kept"] == 6 and report["dropped"]["other_face"] == 2 and not gap.any()
    assert load_video(tmp_path / "m.csv", ReaderConfig(fps=None, face_id=None)).report["kept"] == 8


def test_split_on_gaps(tmp_path):
    table = openface_table(61)  # grid rows 0, 6, ..., 60: 11 points
    for i in (12, 36, 42):
        table.set(i, "success", "0")
    path = table.write(tmp_path / "s.csv")
    frames, times, gap, report = load_video(path, ReaderConfig(on_gap="split"))
    assert report["kept"] == 8 and np.flatnonzero(gap).tolist() == [2, 5] and report["sequences"] == 3
    frames, times, gap, report = load_video(path, ReaderConfig(on_gap="split", min_sequence_frames=3))
    assert report["kept"] == 6 and report["dropped"]["short_sequence"] == 2 and report["sequences"] == 2
    np.testing.assert_array_equal(frames, table.aus()[[18, 24, 30, 48, 54, 60]])  # rows 0, 6 were too short
    assert gap.tolist() == [False, False, False, True, False, False]


def test_bad_reader_config_names_the_key():
    for kw, key in ((dict(on_gap="cut"), "on_gap"), (dict(negative="zero"), "negative"),
                    (dict(fps=0.0), "fps"), (dict(au_column="AU_r"), "au_column"),
                    (dict(time_source="clock"), "time_source"), (dict(au_names=[]), "au_names")):
        with pytest.raises(ConfigError, match=key):
            as_reader_config(ReaderConfig(**kw))
    with pytest.raises(ConfigError, match="fpss"):
        as_reader_config({"fpss": 5.0})



def test_reader_config_from_other_shapes():
    assert as_reader_config({"fps": None, "on_gap": "split"}).on_gap == "split"
    assert as_reader_config(OmegaConf.structured(ReaderConfig(min_confidence=0.5))).min_confidence == 0.5
    with pytest.raises(ConfigError, match="min_confidence"):
        as_reader_config({"min_confidence": "high"})
