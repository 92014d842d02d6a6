"""The synthetic corpus: real OpenFace files read back exactly, determinism, labels, hidden structure."""
from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from data.tasks.labels import read_labels
from data.openface.format import AU_C_NAMES, AU_R_NAMES, _Tables, openface_columns, write_openface_csv
from data.synth.calibration import Calibration, calibration_yaml, read_calibration
from data.synth.generate import SynthConfig, build_behaviour, generate, load_synth_config, video_signals
from synth import main as synth_main
from data.synth.plan import LABEL_WEIGHTS, TASK_A_TARGETS
from data.synth.states import FAMILIES, TRAITS
from utils.config import ConfigError
from utils.runs import RunDirError

REPO = Path(__file__).resolve().parents[1]
# every header variant shows up even in tiny datasets
VARIANTS = {"format.full_fraction": 0.25, "format.gaze_fraction": 0.35, "format.crlf_fraction": 0.5,
            "format.no_final_newline_fraction": 0.5, "workers": 1}
TINY = {
    "pretrain": {"kind": "pretrain", "pretrain.n_subjects": 6, "pretrain.videos_per_subject": 3,
                 "pretrain.video_seconds_min": 2, "pretrain.video_seconds_max": 8, **VARIANTS},
    "task_a": {"kind": "task_a", "task_a.n_subjects": 5, "task_a.n_segments": 16,
               "task_a.min_segments_per_subject": 2, "task_a.segment_seconds_max": 6, **VARIANTS},
    "task_b": {"kind": "task_b", "task_b.n_train": 5, "task_b.n_validation": 3, "task_b.n_test": 2,
               "task_b.interview_seconds_min": 4, "task_b.interview_seconds_max": 10, **VARIANTS},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return {kind: generate(root / kind, overrides) for kind, overrides in TINY.items()}


def parse(path: Path) -> tuple[list[str], np.ndarray, str]:
    """Plain independent parse: (names without spaces, values (n, cols) float64, raw text)."""
    text = path.read_bytes().decode("ascii")
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[-1] == "":
        lines = lines[:-1]
    names = [h.strip() for h in lines[0].split(",")]
    values = np.array([[float(x) for x in line.split(",")] for line in lines[1:]]).reshape(-1, len(names))
    return names, values, text


def csvs(root: Path) -> list[Path]:
    return sorted((root / "openface").rglob("*.csv"))


def video_id(root: Path, path: Path) -> str:
    return path.relative_to(root / "openface").with_suffix("").as_posix()


# ---------------------------------------------------------------- format

def test_columns_match_real_openface_headers(realdata):
    def header(name):
        return [h.strip() for h in (realdata / name).read_text().splitlines()[0].split(",")]
    assert len(openface_columns()) == 714
    assert openface_columns(face_id=True, layout="full") == header("facsvatar_demo_faceid.csv")
    assert openface_columns(face_id=False, layout="full") == header("facsvatar_head_test.csv")
    assert openface_columns(layout="core") == header("emoinfer_default.csv")
    assert openface_columns(layout="gaze") == header("openfacer_lara_core.csv")


def test_writer_exact_text(tmp_path):
    cols = ["frame", "timestamp", "confidence", "success", "pose_Rx", "gaze_0_x", "x_0", "AU12_r"]
    vals = np.array([[1, 0.0, 0.98, 1, -0.0004, 0.1234567, -12.34, 4.999],
                     [2, 1 / 30, 0.0, 0, 0.1236, -1.0, 1234.56, 0.0]])
    write_openface_csv(tmp_path / "a.csv", cols, vals, spaced=True, crlf=True, final_newline=False)
    assert (tmp_path / "a.csv").read_bytes() == (
        b"frame, timestamp, confidence, success, pose_Rx, gaze_0_x, x_0, AU12_r\r\n"
        b"1, 0.000, 0.98, 1, 0.000, 0.123457, -12.3, 5.00\r\n"
        b"2, 0.033, 0.00, 0, 0.124, -1.000000, 1234.6, 0.00")
    write_openface_csv(tmp_path / "b.csv", cols[:2], vals[:, :2])
    assert (tmp_path / "b.csv").read_bytes() == b"frame,timestamp\n1,0.000\n2,0.033\n"


def test_composed_text_equals_table_text():
    """Wide ranges (6-decimal gaze, long timestamps) take another path to the same text."""
    tables = _Tables()
    rng = np.random.default_rng(0)
    for d in (0, 1, 2, 3, 6):
        codes = np.concatenate([rng.integers(-3 * 10 ** (d + 3), 3 * 10 ** (d + 3), 2000),
                                rng.integers(-10 ** (d + 1), 10 ** (d + 1), 2000), [0, -1, 1]])
        want = [f"{c / 10 ** d:.{d}f}" for c in codes.tolist()]  # exact: |c| < 2**53
        assert tables.lookup(codes, d).tolist() == want
        assert tables.composed(codes, d).tolist() == want


# ---------------------------------------------------------------- files and hidden states

@pytest.mark.parametrize("kind", list(TINY))
def test_files_hold_the_simulated_values_exactly(tiny, kind):
    """Each CSV holds what the behaviour model simulated (re-run from its seed), row for row."""
    root = tiny[kind]
    cfg = OmegaConf.load(root / "config.yaml")
    table, dynamics = build_behaviour(cfg)
    hidden = torch.load(root / "hidden.pt")
    subjects = [r["subject"] for r in csv.DictReader(open(root / "traits.csv"))]
    for path in csvs(root):
        vid = video_id(root, path)
        names, values, text = parse(path)
        n = len(values)
        assert hidden["states"][vid].dtype == torch.int16 and hidden["states"][vid].shape == (n,)
        col = {c: values[:, names.index(c)] for c in names}
        assert np.array_equal(col["frame"], np.arange(1, n + 1))
        assert np.array_equal(col["timestamp"], np.round(np.arange(n) / 30, 3))
        assert np.array_equal(np.rint(col["timestamp"] * 30), np.arange(n))  # frame -> hidden state
        s, v = subjects.index(vid.split("/")[0]), int(vid.split("/v")[1])
        sig = video_signals(cfg, table, dynamics, s, v, n)
        assert np.array_equal(hidden["states"][vid].numpy(), sig.states)
        aus = np.stack([col[c] for c in AU_R_NAMES], axis=1)
        assert np.array_equal(aus, sig.aus)
        assert np.array_equal(np.stack([col[c] for c in AU_C_NAMES], 1), sig.presence)
        assert np.array_equal(col["confidence"], sig.confidence)
        assert np.array_equal(col["success"], sig.success)
        assert aus.min() >= 0 and aus.max() <= 5


def test_header_variants_are_mixed(tiny):
    layouts, face_id, spaced, endings = set(), set(), set(), set()
    for root in tiny.values():
        for path in csvs(root):
            raw = path.read_bytes()
            names, _, _ = parse(path)
            layout = {714: "full", 713: "full", 54: "gaze", 53: "gaze", 46: "core", 45: "core"}[len(names)]
            assert names == openface_columns(face_id="face_id" in names, layout=layout)
            layouts.add(layout)
            face_id.add("face_id" in names)
            spaced.add(raw.startswith(b"frame, "))
            endings.add(("crlf" if b"\r\n" in raw else "lf", raw.endswith(b"\n")))
    assert layouts == {"full", "gaze", "core"} and face_id == spaced == {True, False}
    assert endings == {("crlf", True), ("crlf", False), ("lf", True), ("lf", False)}


def test_read_raw_reads_synthetic_files_exactly(tiny):
    if importlib.util.find_spec("data.openface.reader") is None:
        pytest.skip("data/openface.py (the reader) is not there yet")
    from data.openface.reader import read_raw
    for root in tiny.values():
        for path in csvs(root):
            names, values, _ = parse(path)
            raw = read_raw(path)
            col = {c: values[:, names.index(c)] for c in names}
            same = lambda got, want: got.shape == want.shape and np.array_equal(got, want.astype(got.dtype))
            assert raw.columns == names and raw.n_rows == len(values), path
            assert raw.truncated_rows == [] and raw.malformed_rows == [], path
            for field in ("frame", "timestamp", "confidence", "success"):
                assert same(np.asarray(getattr(raw, field)), col[field]), (path, field)
            if "face_id" in names:
                assert same(raw.face_id, col["face_id"])
            expect = np.stack([col[c] for c in AU_R_NAMES], axis=1)
            assert raw.aus.dtype == np.float32 and same(raw.aus, expect), path


def test_au_text_has_two_decimals_and_is_sparse(tiny):
    root = tiny["task_b"]
    zeros, total = 0, 0
    for path in csvs(root):
        names, values, text = parse(path)
        sep = ", " if ", " in text.split("\n")[0] else ","
        idx = [names.index(c) for c in AU_R_NAMES]
        for line in text.replace("\r\n", "\n").strip("\n").split("\n")[1:50]:
            cells = line.split(sep)
            assert all(re.fullmatch(r"[0-5]\.\d\d", cells[i]) for i in idx), line
        aus = values[:, idx]
        zeros, total = zeros + int((aus == 0).sum()), total + aus.size
    # OpenFace's floor at 0 shows: the real files have 45 % exact zeros, the calibrated default ~20 %
    assert 0.1 < zeros / total < 0.7


def test_failed_frames_are_all_zero(tiny):
    for root in tiny.values():
        for path in csvs(root):
            names, values, _ = parse(path)
            ok = values[:, names.index("success")] == 1
            conf = values[:, names.index("confidence")]
            body = values[:, names.index("success") + 1:]  # everything after success
            assert np.all(body[~ok] == 0) and np.all(conf[~ok] == 0) and np.all(conf[ok] > 0)


def test_failed_and_low_confidence_bursts(population):
    failed = low = failed_runs = low_runs = 0
    for v in population:
        bad, dim = ~v["success"], v["success"] & (v["confidence"] < 0.9)
        failed, low = failed + int(bad.sum()), low + int(dim.sum())
        failed_runs += int(np.sum(np.diff(np.r_[0, bad.astype(int)]) == 1))
        low_runs += int(np.sum(np.diff(np.r_[0, dim.astype(int)]) == 1))
    frames = sum(len(v["aus"]) for v in population)
    assert 0.002 < failed / frames < 0.05 and 0.005 < low / frames < 0.08
    assert failed / failed_runs > 3 and low / low_runs > 3  # bursts, not isolated rows


def test_hidden_file_contents(tiny):
    hidden = torch.load(tiny["pretrain"] / "hidden.pt")
    n_states = len(read_calibration(OmegaConf.load(tiny["pretrain"] / "config.yaml").calibration_file).states)
    assert hidden["fps"] == 30.0 and len(hidden["state_names"]) == n_states >= 24
    assert hidden["prototypes"].shape == (n_states, 17) and hidden["au_names"] == list(AU_R_NAMES)
    assert set(hidden["state_families"]) <= set(FAMILIES) and len(hidden["state_families"]) == n_states
    labels = read_labels(tiny["pretrain"] / "labels.csv")
    assert set(hidden["states"]) == set(labels.video_ids)
    for states in hidden["states"].values():
        assert 0 <= int(states.min()) and int(states.max()) < n_states


# ---------------------------------------------------------------- labels and splits

def test_labels_task_a(tiny):
    labels = read_labels(tiny["task_a"] / "labels.csv")
    assert labels.target_names == list(TASK_A_TARGETS)
    assert len(labels.video_ids) == 16 and set(labels.splits) == {"all"} and len(set(labels.subjects)) == 5
    y = labels.matrix(list(TASK_A_TARGETS))
    assert np.all((y >= 1) & (y <= 7) & (y == np.round(y)))
    for s in set(labels.subjects):  # ratings are per subject
        rows = [i for i, x in enumerate(labels.subjects) if x == s]
        assert len(rows) >= 2 and np.all(y[rows] == y[rows[0]])
    assert all(Path(tiny["task_a"] / "openface" / f"{v}.csv").exists() for v in labels.video_ids)


def test_labels_task_b(tiny):
    labels = read_labels(tiny["task_b"] / "labels.csv")
    assert labels.target_names == ["phq8"]
    y = labels.targets["phq8"]
    assert np.all((y >= 0) & (y <= 24) & (y == np.round(y)))
    assert len(set(labels.subjects)) == len(labels.video_ids) == 10
    assert {s: labels.splits.count(s) for s in set(labels.splits)} == {"train": 5, "validation": 3, "test": 2}
    assert read_labels(tiny["pretrain"] / "labels.csv").target_names == []


def test_default_task_b_split_sizes(tmp_path):
    cfg = load_synth_config({"kind": "task_b", "task_b.interview_seconds_min": 0.1,
                             "task_b.interview_seconds_max": 0.2, "workers": 1})
    labels = read_labels(generate(tmp_path / "b", cfg) / "labels.csv")
    assert [labels.splits.count(s) for s in ("train", "validation", "test")] == [163, 56, 56]


# ---------------------------------------------------------------- determinism, reuse, config

def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "config.yaml"}  # config.yaml records out= and workers=


def test_same_seed_same_bytes_any_workers(tmp_path, tiny):
    again = generate(tmp_path / "again", {**TINY["task_a"], "workers": 2})
    assert _files(again) == _files(tiny["task_a"])
    other = generate(tmp_path / "seed1", {**TINY["task_a"], "seed": 1})
    differ = _files(other)
    assert differ.keys() != _files(tiny["task_a"]).keys() or all(
        differ[k] != v for k, v in _files(tiny["task_a"]).items() if k.endswith((".csv", ".pt")))


def test_reuse_resume_and_refuse(tmp_path):
    out = generate(tmp_path / "d", TINY["task_b"])
    before = _files(out)
    stamp = (out / "meta.json").stat().st_mtime_ns
    assert generate(out, TINY["task_b"]) == out and (out / "meta.json").stat().st_mtime_ns == stamp
    # an interrupted run (no meta.json, a file missing) finishes with the same bytes
    (out / "meta.json").unlink()
    next((out / "openface").rglob("*.csv")).unlink()
    generate(out, TINY["task_b"])
    assert _files(out) == before
    with pytest.raises(RunDirError, match="task_b.n_train"):
        generate(out, {**TINY["task_b"], "task_b.n_train": 6})


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="kind"):
        generate("/nonexistent/never", {"kind": "task_c"})
    with pytest.raises(ConfigError, match="task_b.n_tran"):
        load_synth_config({"task_b.n_tran": 3})
    with pytest.raises(ConfigError, match="format.crlf_fraction"):
        generate("/nonexistent/never", {"format.crlf_fraction": 1.5})
    with pytest.raises(ConfigError, match="task_a.n_segments"):
        generate("/nonexistent/never", {"kind": "task_a", "task_a.n_segments": 10})
    with pytest.raises(ConfigError, match="pretrain.video_seconds_min"):
        generate("/nonexistent/never", {"pretrain.video_seconds_min": 40})


def test_yaml_defaults_match_schema():
    assert OmegaConf.to_container(load_synth_config()) == OmegaConf.to_container(OmegaConf.structured(SynthConfig))


def test_calibration_file_round_trip_and_errors(tmp_path):
    cal = read_calibration("configs/synth_calibration.yaml")
    assert len(cal.states) == len(cal.shares) == len(cal.log_pref) >= 24 and len(cal.rest) == 17
    (tmp_path / "c.yaml").write_text(calibration_yaml(cal, "# a copy\n"))
    assert read_calibration(tmp_path / "c.yaml") == cal
    (tmp_path / "bad.yaml").write_text("states: []\njiter: [1]\n")
    with pytest.raises(ConfigError, match="unknown calibration key 'jiter'"):
        read_calibration(tmp_path / "bad.yaml")
    (tmp_path / "short.yaml").write_text(calibration_yaml(Calibration(**{**cal.__dict__, "rest": [0.1] * 16})))
    with pytest.raises(ConfigError, match="'rest' must be 17 finite numbers"):
        generate(tmp_path / "d", {**TINY["task_b"], "calibration_file": str(tmp_path / "short.yaml")})
    with pytest.raises(ConfigError, match="calibration_file=nowhere.yaml: no such file"):
        generate(tmp_path / "e", {**TINY["task_b"], "calibration_file": "nowhere.yaml"})


def test_a_dataset_refuses_another_calibration(tmp_path):
    cal = read_calibration("configs/synth_calibration.yaml")
    path = tmp_path / "c.yaml"
    path.write_text(calibration_yaml(cal))
    out = generate(tmp_path / "d", {**TINY["task_b"], "calibration_file": str(path)})
    path.write_text(calibration_yaml(Calibration(**{**cal.__dict__, "dwell_scale": 2.0})))
    with pytest.raises(RunDirError, match="another calibration"):
        generate(out, {**TINY["task_b"], "calibration_file": str(path)})


def test_cli(tmp_path):
    out = tmp_path / "cli"
    run = subprocess.run([sys.executable, "synth.py", f"out={out}", "kind=task_b", "task_b.n_train=2",
                          "task_b.n_validation=1", "task_b.n_test=1", "task_b.interview_seconds_min=1",
                          "task_b.interview_seconds_max=2", "workers=1"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (out / "meta.json").exists() and len(csvs(out)) == 4
    with pytest.raises(ConfigError, match="task_b.interview_secs"):
        synth_main([f"out={out}2", "task_b.interview_secs=3"])
    with pytest.raises(ConfigError, match="out=DIR"):
        synth_main(["kind=task_b"])


# ---------------------------------------------------------------- behaviour: what later stages should find

@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """40 subjects x 40 s: enough to see traits in behaviour and labels, still under a second."""
    root = generate(tmp_path_factory.mktemp("pop") / "b", {
        "kind": "task_b", "workers": 1, "task_b.n_train": 40, "task_b.n_validation": 0, "task_b.n_test": 0,
        "task_b.interview_seconds_min": 40, "task_b.interview_seconds_max": 40})
    hidden = torch.load(root / "hidden.pt")
    traits = {r["subject"]: r for r in csv.DictReader(open(root / "traits.csv"))}
    labels = read_labels(root / "labels.csv")
    videos = []
    for vid, subject in zip(labels.video_ids, labels.subjects):
        names, values, _ = parse(root / "openface" / f"{vid}.csv")
        ok = (values[:, names.index("success")] == 1) & (values[:, names.index("confidence")] >= 0.9)
        aus = values[:, [names.index(c) for c in AU_R_NAMES]]
        videos.append({"aus": aus, "ok": ok, "success": values[:, names.index("success")] == 1,
                       "confidence": values[:, names.index("confidence")], "states": hidden["states"][vid].numpy(),
                       "families": np.asarray(hidden["state_families"]),
                       "traits": np.array([float(traits[subject][t]) for t in TRAITS]),
                       "phq8": labels.targets["phq8"][labels.row_of[vid]]})
    return videos


def _au(name):
    return AU_R_NAMES.index(name + "_r")


def test_co_activation_groups(population):
    aus = np.concatenate([v["aus"][v["ok"]] for v in population])
    c = np.corrcoef(aus.T)
    # the groups of the published centres (count-weighted r in brackets): smiles, brows, lids, chin
    assert c[_au("AU06"), _au("AU12")] > 0.5     # Duchenne smile (0.69)
    assert c[_au("AU01"), _au("AU02")] > 0.6     # brow raise (0.86)
    assert c[_au("AU06"), _au("AU07")] > 0.35    # cheek raiser with lid tightener (0.59)
    assert c[_au("AU17"), _au("AU23")] > 0.3     # chin raiser with lip tightener (0.56)
    assert c[_au("AU10"), _au("AU12")] > 0.3 and c[_au("AU12"), _au("AU14")] > 0.3   # smile recruits (0.52, 0.47)
    assert c[_au("AU25"), _au("AU26")] > 0.1     # lips part with the jaw (0.37)
    assert c[_au("AU04"), _au("AU12")] < 0.05    # frowns are not smiles (-0.09)


def test_onset_apex_offset_dynamics(population):
    smile, neutral = "smile", "neutral"
    at_apex, at_rest, jumps, run_lengths = [], [], [], []
    for v in population:
        fam = v["families"][v["states"]]
        since = np.zeros(len(fam), dtype=int)  # frames since the state began
        change = np.flatnonzero(np.diff(v["states"]) != 0) + 1
        for a, b in zip(np.r_[0, change], np.r_[change, len(fam)]):
            since[a:b] = np.arange(b - a)
            run_lengths.append(b - a)
        ok = v["ok"] & (since >= 15)
        at_apex.append(v["aus"][ok & (fam == smile), _au("AU12")])
        at_rest.append(v["aus"][ok & (fam == neutral), _au("AU12")])
        both = v["ok"][1:] & v["ok"][:-1]
        jumps.append(np.abs(np.diff(v["aus"], axis=0))[both].max(axis=1))
    assert np.concatenate(at_apex).mean() > np.concatenate(at_rest).mean() + 0.8
    assert np.median(run_lengths) >= 10               # episodes last, states do not flicker
    assert np.percentile(np.concatenate(jumps), 50) < 0.4  # ramps are smooth frame to frame


def test_blinks_are_brief_and_frequent(population):
    starts, active = 0, 0
    for v in population:
        on = v["aus"][:, _au("AU45")] > 1.0
        starts += int(np.sum(np.diff(on.astype(int)) == 1))
        active += int(on.sum())
    minutes = sum(len(v["aus"]) for v in population) / 30 / 60
    assert 5 < starts / minutes < 40
    assert active / starts < 0.5 * 30  # a blink (with any co-occurring AU45 above 1) is well under 0.5 s


def test_traits_shape_behaviour_and_labels(population):
    t = np.stack([v["traits"] for v in population])
    mean = np.stack([v["aus"][v["ok"]].mean(axis=0) for v in population])
    change_rate = np.array([np.mean(np.diff(v["states"]) != 0) for v in population])
    col = {name: t[:, i] for i, name in enumerate(TRAITS)}
    r = lambda a, b: np.corrcoef(a, b)[0, 1]
    assert r(col["positivity"], mean[:, _au("AU12")]) > 0.3      # static level
    assert r(col["tension"], mean[:, _au("AU04")]) > 0.3
    assert r(col["tempo"], change_rate) > 0.4                     # dynamics
    assert r(col["expressivity"], mean.mean(axis=1)) > 0.4
    phq8 = np.array([v["phq8"] for v in population])
    signal = t @ np.array(LABEL_WEIGHTS["phq8"])
    assert 0.45 < r(phq8, signal) < 0.97                          # learnable, with noise


def test_states_last_and_families_keep_their_pace(population):
    """Semi-Markov: an episode never continues in its own state, lasts at least 2 frames, and its
    length follows its family (speech episodes are short, resting ones long), not one geometric law."""
    runs = {"speech": [], "neutral": []}
    for v in population:
        change = np.flatnonzero(np.diff(v["states"]) != 0) + 1
        for a, b in zip(np.r_[0, change][1:-1], np.r_[change, len(v["states"])][1:-1]):  # whole episodes only
            fam = v["families"][v["states"][a]]
            if fam in runs:
                runs[fam].append(b - a)
    speech, neutral = np.array(runs["speech"]), np.array(runs["neutral"])
    assert len(speech) > 50 and len(neutral) > 50 and speech.min() >= 2 and neutral.min() >= 2
    assert np.median(neutral) > 1.8 * np.median(speech)
    assert 0.5 * 0.6 * 30 < np.median(speech) < 2 * 0.6 * 30              # family median dwell 0.6 s
    assert neutral.std() / neutral.mean() < 0.9                            # log-normal, not memoryless


def test_every_kind_shares_the_calibrated_behaviour(tiny):
    hidden = {kind: torch.load(tiny[kind] / "hidden.pt") for kind in TINY}
    for kind in ("task_a", "task_b"):
        assert torch.equal(hidden[kind]["prototypes"], hidden["pretrain"]["prototypes"])
        assert hidden[kind]["state_families"] == hidden["pretrain"]["state_families"]
    cal = read_calibration(OmegaConf.load(tiny["pretrain"] / "config.yaml").calibration_file)
    assert np.allclose(hidden["pretrain"]["prototypes"].numpy(), np.asarray(cal.states), atol=1e-6)


# ---------------------------------------------------------------- states from a vocabulary

def _vocab(tmp_path, centres, counts, au_names=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    torch.save({"centroids": torch.tensor(centres, dtype=torch.float32), "counts": torch.tensor(counts),
                "au_names": au_names or [a.removesuffix("_r") for a in AU_R_NAMES]}, tmp_path / "centroids.pt")
    return tmp_path


def test_vocab_states_sit_at_the_centres_with_the_counts_shares(tmp_path):
    from data.synth.generate import simulate_corpus
    rest = np.asarray(read_calibration("configs/synth_calibration.yaml").rest)
    centres = np.tile(rest, (4, 1))
    centres[1, [_au("AU06"), _au("AU12")]] = [2.0, 3.0]        # a smile
    centres[2, [_au("AU25"), _au("AU26")]] = [2.5, 2.0]        # an open mouth
    centres[3] = np.nan                                        # a NaN centre: never a state
    vocab = _vocab(tmp_path / "v", centres.tolist(), [500, 300, 200, 50])
    cfg = load_synth_config({"vocab": str(vocab), "kind": "pretrain", "pretrain.n_subjects": 24,
                             "pretrain.videos_per_subject": 2, "pretrain.video_seconds_min": 20,
                             "pretrain.video_seconds_max": 30})
    sim = simulate_corpus(cfg)
    assert sim.n_states == 3 and sim.frames.min() >= 0 and sim.frames.max() <= 5
    share = np.bincount(sim.states, minlength=3) / len(sim.states)
    assert np.allclose(share, [0.5, 0.3, 0.2], atol=0.08)
    smile = sim.frames[sim.states == 1].mean(axis=0)
    assert abs(smile[_au("AU12")] - 3.0) < 0.6 and abs(smile[_au("AU06")] - 2.0) < 0.5
    assert sim.frames[sim.states == 2, _au("AU25")].mean() > 1.5 > sim.frames[sim.states == 0, _au("AU25")].mean()
    out = generate(tmp_path / "d", {**TINY["task_b"], "vocab": str(vocab)})
    hidden = torch.load(out / "hidden.pt")
    assert np.allclose(hidden["prototypes"].numpy(), np.clip(centres[:3], 0, 5), atol=1e-6)
    assert hidden["state_families"] == ["neutral", "smile", "speech"]


def test_vocab_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no centroids.pt"):
        generate(tmp_path / "a", {**TINY["task_b"], "vocab": str(tmp_path)})
    bad = _vocab(tmp_path / "b", [[0.0] * 17], [10], au_names=[f"AU{i:02d}" for i in range(17)])
    with pytest.raises(ValueError, match="centroids.pt: its AUs"):
        generate(tmp_path / "c", {**TINY["task_b"], "vocab": str(bad)})


# ---------------------------------------------------------------- calibration and the realism targets

def _real_corpus(realdata: Path, tmp: Path):
    """The real OpenFace 2.x files of ../shared/realdata (MANIFEST.md), ingested at 5 fps."""
    from data.openface.ingest import ingest
    src = tmp / "real_src"
    src.mkdir()
    for path in realdata.glob("*.csv"):
        if not path.name.startswith("pyfeat_") or path.name == "pyfeat_OpenFace_Test.csv":
            (src / path.name).symlink_to(path)
    ingest(src, tmp / "real", {"workers": 1, "progress": False})
    return tmp / "real"


def _sim_set(sim):
    from data.realism import FrameSet
    return FrameSet(frames=sim.frames.astype(np.float64), au_names=[a.removesuffix("_r") for a in AU_R_NAMES],
                    offsets=sim.offsets, gap_before=sim.gap_before)


def test_calibrated_default_meets_the_targets(realdata, tmp_path):
    """Issue 16's targets on a default pretraining corpus: levels and co-activation against the
    published centres (count-weighted), motion against the real files, at 5 fps."""
    from data.realism import check_targets, compare, frame_stats, load_frame_set
    from data.synth.generate import simulate_corpus
    from tests.published import AUGLOVE, write_published_vocab
    if not AUGLOVE.is_dir():
        pytest.skip(f"{AUGLOVE} is absent")
    published = frame_stats(load_frame_set(write_published_vocab(tmp_path / "published")))
    real = frame_stats(load_frame_set(_real_corpus(realdata, tmp_path)))
    sim = simulate_corpus(load_synth_config({"pretrain.n_subjects": 40, "pretrain.videos_per_subject": 5}))
    ours = frame_stats(_sim_set(sim))
    got = check_targets(compare(ours, published), compare(ours, real))
    assert len(got) == 5 and all(met for _, met in got.values()), got


def test_calibrate_recovers_a_reference_corpus(tmp_path):
    """Fit a calibration to a corpus drawn with other settings, then the fitted generator matches it."""
    from data.realism import compare, frame_stats, load_frame_set
    from data.synth.generate import simulate_corpus
    from data.openface.ingest import ingest
    cal = read_calibration("configs/synth_calibration.yaml")      # the reference: slower, higher, calmer
    other = Calibration(**{**cal.__dict__, "dwell_scale": 0.7, "offset": (np.asarray(cal.offset) + 0.15).tolist(),
                           "jitter": (0.7 * np.asarray(cal.jitter)).tolist()})
    (tmp_path / "other.yaml").write_text(calibration_yaml(other))
    ref_cfg = {"kind": "pretrain", "workers": 1, "pretrain.n_subjects": 24, "pretrain.videos_per_subject": 2,
               "pretrain.video_seconds_min": 10, "pretrain.video_seconds_max": 20, "format.gaze_fraction": 0.0,
               "calibration_file": str(tmp_path / "other.yaml")}
    ingest(generate(tmp_path / "ref_synth", ref_cfg) / "openface", tmp_path / "ref", {"workers": 1, "progress": False})
    synth_main(["calibrate=" + str(tmp_path / "ref"), f"out={tmp_path / 'fit'}", "fit.n_states=16", "fit.rounds=2",
                "fit.probe.n_subjects=24", "fit.probe.videos_per_subject=2", "fit.probe.video_seconds_min=10",
                "fit.probe.video_seconds_max=20"])
    fitted = OmegaConf.load(tmp_path / "fit" / "calibration.yaml")
    assert len(fitted.states) == 16 and len(fitted.rest) == len(fitted.jitter) == len(fitted.offset) == 17
    assert abs(sum(fitted.shares) - 1) < 1e-3 and set(fitted.fit) >= {"profile_corr", "motion_ratio"}
    cfg = load_synth_config({"calibration_file": str(tmp_path / "fit" / "calibration.yaml"), "seed": 7,
                             "pretrain.n_subjects": 24, "pretrain.videos_per_subject": 2,
                             "pretrain.video_seconds_min": 10, "pretrain.video_seconds_max": 20})
    c = compare(frame_stats(_sim_set(simulate_corpus(cfg))), frame_stats(load_frame_set(tmp_path / "ref")))
    assert c["profile_corr"] > 0.9 and 0.9 < c["au_sum_ratio"] < 1.1, c
    assert c["corr_matrix_corr"] > 0.8 and 0.8 < c["motion_ratio"] < 1.25, c
    with pytest.raises(FileNotFoundError, match="neither a corpus"):
        synth_main([f"calibrate={tmp_path}", f"out={tmp_path / 'fit2'}"])
