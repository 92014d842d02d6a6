"""Ingestion end to end: a small tree with a bad file, resume, reuse, config errors."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import data.openface.ingest as ingest_mod
from data.openface.corpus import FrameCorpus
from data.openface.ingest import IngestConfig, ingest
from ingest import main
from data.openface.reader import DEFAULT_AUS, PRESETS, ReaderConfig, load_video
from tests.openface_files import openface_table
from utils.config import ConfigError
from utils.runs import RunDirError

QUIET = {"progress": False, "workers": 1}


@pytest.fixture
def tree(tmp_path):
    """src/a/v1.csv (31 rows), src/a/v2.csv (61 rows, spaced CRLF, failed rows), src/b/v3.csv
    (cut-off last row), src/bad.csv (no AU columns), src/empty.csv (0 bytes), src/notes.txt."""
    src = tmp_path / "src"
    openface_table(31, seed=1).write(src / "a" / "v1.csv")
    t2 = openface_table(61, seed=2)
    for i in (12, 13, 36):
        t2.set(i, "success", "0")
    t2.write(src / "a" / "v2.csv", spaced=True, crlf=True)
    openface_table(20, seed=3, face_id=False).write(src / "b" / "v3.csv", final_newline=False, cut_last=7)
    bad = openface_table(5, seed=4)
    bad.columns = [c.replace("_r", "_x") for c in bad.columns]
    bad.write(src / "bad.csv")
    (src / "empty.csv").write_bytes(b"")
    (src / "notes.txt").write_text("not a csv")
    return src


def expected(src, cfg=ReaderConfig()):
    names = ["a/v1", "a/v2", "b/v3"]
    videos = [load_video(src / f"{n}.csv", cfg) for n in names]
    return names, videos


def test_ingest_tree(tree, tmp_path, capsys):
    out = tmp_path / "corpus"
    corpus = ingest(tree, out, QUIET)
    names, videos = expected(tree)
    assert corpus.video_ids == names and corpus.meta["n_videos"] == 3
    np.testing.assert_array_equal(corpus.frames.numpy(), np.concatenate([v.frames for v in videos]))
    np.testing.assert_array_equal(corpus.timestamps.numpy(), np.concatenate([v.timestamps for v in videos]))
    np.testing.assert_array_equal(corpus.gap_before.numpy(), np.concatenate([v.gap_before for v in videos]))
    lengths = [len(v.frames) for v in videos]
    assert lengths == [6, 9, 4]  # v2: grid rows 12 and 36 failed; v3: 19 whole rows over 0.6 s
    assert corpus.offsets.tolist() == [0, 6, 15, 19] and corpus.sequence_video.tolist() == [0, 1, 2]
    assert corpus.frames.dtype == torch.float32 and corpus.frames.shape == (19, 17)

    meta = json.loads((out / "meta.json").read_text())
    assert meta["au_names"] == list(DEFAULT_AUS) and meta["fps"] == 5.0 and meta["src"] == str(tree)
    assert meta["n_frames"] == 19 and meta["n_videos"] == 3
    assert meta["fingerprint"] == FrameCorpus.compute_fingerprint(corpus.frames.numpy(), corpus.offsets.numpy())

    report = json.loads((out / "ingest_report.json").read_text())
    files = {r["file"]: r for r in report["files"]}
    assert list(files) == ["a/v1.csv", "a/v2.csv", "b/v3.csv", "bad.csv", "empty.csv"]
    assert "AU01_r" in files["bad.csv"]["error"] and "bad.csv" in files["bad.csv"]["error"]
    assert files["empty.csv"]["empty"] and files["empty.csv"]["error"] is None
    assert files["b/v3.csv"]["truncated_lines"] == [21] and files["a/v2.csv"]["dropped"]["failed"] == 2
    assert report["errors"] == [{"file": "bad.csv", "error": files["bad.csv"]["error"]}]
    totals = report["totals"]
    assert totals["files"] == 5 and totals["files_failed"] == 1 and totals["files_empty"] == 1
    assert totals["kept"] == 19 and totals["rows_read"] == 31 + 61 + 20 + 0 + 0
    assert totals["kept"] + sum(totals["dropped"].values()) == totals["rows_read"]
    assert "skipped bad.csv" in capsys.readouterr().err

    loaded = FrameCorpus.load(out)
    assert torch.equal(loaded.frames, corpus.frames) and loaded.video_ids == names
    assert torch.equal(loaded.offsets, corpus.offsets) and loaded.fingerprint == corpus.fingerprint


class CountingReader:
    """Stands in for data.openface.ingest.load_video; counts calls per file, optionally stops the run."""

    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def __call__(self, path, cfg):
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            raise KeyboardInterrupt  # an interrupted run
        self.calls.append(os.path.basename(path))
        return load_video(path, cfg)


def test_resume_and_reuse(tree, tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    reader = CountingReader(stop_after=2)
    monkeypatch.setattr(ingest_mod, "load_video", reader)
    with pytest.raises(KeyboardInterrupt):
        ingest(tree, out, QUIET)
    assert reader.calls == ["v1.csv", "v2.csv"] and not (out / "meta.json").exists()
    assert len(list((out / "parts").glob("*.part"))) == 2

    reader = CountingReader()
    monkeypatch.setattr(ingest_mod, "load_video", reader)
    corpus = ingest(tree, out, QUIET)  # resumes: the two finished files are not read again
    assert reader.calls == ["v3.csv", "bad.csv", "empty.csv"]
    reference = ingest(tree, tmp_path / "fresh", QUIET)
    assert torch.equal(corpus.frames, reference.frames) and corpus.fingerprint == reference.fingerprint

    reader = CountingReader()
    monkeypatch.setattr(ingest_mod, "load_video", reader)
    again = ingest(tree, out, {**QUIET, "workers": 3})  # same inputs and config: reused as it is
    assert reader.calls == [] and again.fingerprint == corpus.fingerprint

    # one changed file: only it is read again; its old part is cleaned up
    openface_table(31, seed=9).write(tree / "a" / "v1.csv")
    changed = ingest(tree, out, QUIET)
    assert reader.calls == ["v1.csv"] and changed.fingerprint != corpus.fingerprint
    assert len(list((out / "parts").glob("*.part"))) == 5

    # a damaged part (and no finished corpus) costs one re-read, not a wrong corpus
    (out / "meta.json").unlink()
    part = sorted((out / "parts").glob("*.part"))[0]
    part.write_bytes(part.read_bytes()[:-3])
    repaired = ingest(tree, out, QUIET)
    assert len(reader.calls) == 2 and repaired.fingerprint == changed.fingerprint

    with pytest.raises(RunDirError, match="fps"):
        ingest(tree, out, {**QUIET, "fps": 10.0})


def test_parallel_matches_serial(tree, tmp_path):
    serial = ingest(tree, tmp_path / "serial", QUIET)
    parallel = ingest(tree, tmp_path / "parallel", {"progress": True, "workers": 2})
    assert torch.equal(serial.frames, parallel.frames) and serial.video_ids == parallel.video_ids
    assert serial.fingerprint == parallel.fingerprint


def test_split_sequences(tree, tmp_path):
    corpus = ingest(tree, tmp_path / "split", IngestConfig(on_gap="split", progress=False, workers=1))
    # v2: grid points 0..10 (rows 0, 6, ..., 60); rows 12 and 36 failed -> [0,6] [18,24,30] [42..60]
    assert corpus.offsets.tolist() == [0, 6, 8, 11, 15, 19]
    assert corpus.sequence_video.tolist() == [0, 1, 1, 1, 2]
    assert corpus.sequence_ids == ["a/v1", "a/v2", "a/v2", "a/v2", "b/v3"]
    assert corpus.meta["n_sequences"] == 5 and corpus.meta["n_videos"] == 3


def test_cli(tree, tmp_path, capsys):
    out = tmp_path / "cli"
    corpus = main([f"src={tree}", f"out={out}", "workers=1", "progress=false", "fps=10"])
    assert corpus.meta["fps"] == 10.0 and "3 videos" in capsys.readouterr().out
    assert (out / "config.yaml").read_text().count("fps: 10.0") == 1
    with pytest.raises(ConfigError, match="fpss"):
        main([f"src={tree}", f"out={out}", "fpss=10"])
    with pytest.raises(ConfigError, match="on_gap"):
        main([f"src={tree}", f"out={tmp_path / 'x'}", "on_gap=cut"])
    with pytest.raises(ConfigError, match="min_confidence"):
        main([f"src={tree}", f"out={tmp_path / 'x'}", "min_confidence=high"])
    with pytest.raises(ConfigError, match="src"):
        main([f"out={tmp_path / 'x'}"])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ingest(tmp_path / "nowhere", tmp_path / "y", QUIET)


def test_pyfeat_corpus(realdata, tmp_path):
    cfg = {**QUIET, **PRESETS["pyfeat"]}
    corpus = ingest(realdata / "pyfeat_news_sample", tmp_path / "pyfeat", cfg)
    assert corpus.video_ids == [f"{i:03d}" for i in range(1, 21)] and corpus.frames.shape[1] == 20
    report = json.loads((tmp_path / "pyfeat" / "ingest_report.json").read_text())
    assert [e["file"] for e in report["errors"]] == ["clip_attrs.csv"]  # the labels, not a face file


def test_io_errors_are_retried(tree, tmp_path, monkeypatch):
    calls, failed = [], []

    def flaky(path, cfg):  # v2.csv cannot be read the first time
        calls.append(os.path.basename(path))
        if path.endswith("v2.csv") and not failed:
            failed.append(path)
            raise PermissionError(f"{path}: permission denied")
        return load_video(path, cfg)

    monkeypatch.setattr(ingest_mod, "load_video", flaky)
    out = tmp_path / "corpus"
    first = ingest(tree, out, QUIET)
    assert first.video_ids == ["a/v1", "b/v3"] and first.meta["files_to_retry"] == 1
    errors = json.loads((out / "ingest_report.json").read_text())["errors"]
    assert [e["file"] for e in errors] == ["a/v2.csv", "bad.csv"] and "PermissionError" in errors[0]["error"]
    calls.clear()
    second = ingest(tree, out, QUIET)  # same inputs, but a file to retry: only it is read again
    assert calls == ["v2.csv"] and second.video_ids == ["a/v1", "a/v2", "b/v3"]
    calls.clear()
    assert ingest(tree, out, QUIET).fingerprint == second.fingerprint and calls == []
