"""Synthetic OpenFace datasets with known hidden structure: `python synth.py out=DIR kind=...`.

    kind=pretrain   many subjects, many short videos, no targets
    kind=task_a     ~40 subjects, ~800 segments of up to 30 s, five PANSS-like ratings 1-7 per subject
    kind=task_b     ~275 interviews (one per subject), PHQ-8-like score 0-24, split 163/56/56

Writes (see ARCHITECTURE.md, "Synthetic datasets")
    DIR/openface/<subject>/<video>.csv   OpenFace 2.x FeatureExtraction files, header variants mixed
    DIR/labels.csv                       video_id, subject, split, targets
    DIR/hidden.pt                        hidden expression state of every CSV row, blink onsets, prototypes
    DIR/traits.csv                       hidden per-subject traits (and derived rates)
    DIR/behaviour.yaml                   the calibration it was drawn with (a run refuses another one)
    DIR/meta.json                        kind, seed, sizes, target names; written last = finished

The behaviour model is in data/synth/behaviour.py (state tables in states.py), its fitted figures in
the calibration file (calibration.py; `calibration_file=`, or `vocab=DIR` for a vocabulary's centres
as states), the dataset plan and labels in plan.py, the file format in data/openface/format.py.
`simulate_corpus` gives the same videos in memory at the corpus rate (calibration, benchmarks).
Every video draws from its own random stream, so the output is byte-identical for a seed whatever
`workers` is.
"""
from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import MISSING, DictConfig, OmegaConf

from data.openface.format import AU_INTENSITY, AU_R_NAMES, openface_columns, write_openface_csv
from data.synth.behaviour import Dynamics, Subject, behaviour_from, draw_traits, make_subject, simulate_video
from data.synth.calibration import DEFAULT_CALIBRATION, Calibration, read_calibration, resolve
from data.synth.face import full_blocks, gaze, head_pose
from data.synth.plan import TASK_A_TARGETS, TASK_B_TARGETS, LABEL_WEIGHTS, add_labels, plan_videos, rng_for
from data.synth.states import FAMILIES, TRAITS, StateTable
from utils.config import CONFIG_DIR, ConfigError, load_config
from utils.artifacts import Tensor, check_fields, load_torch
from utils.io import file_digest, save_json, save_text, save_torch
from utils.runs import RunDirError, open_run_dir

KINDS = ("pretrain", "task_a", "task_b")
DEFAULTS = CONFIG_DIR / "synth.yaml"


@dataclass
class PretrainSizes:
    n_subjects: int = 120
    videos_per_subject: float = 8.0     # mean; each subject has 1 + Poisson(mean - 1)
    video_seconds_min: float = 4.0      # lengths are log-uniform between min and max
    video_seconds_max: float = 30.0


@dataclass
class TaskASizes:
    n_subjects: int = 40
    n_segments: int = 800
    min_segments_per_subject: int = 5
    segment_seconds_min: float = 3.0    # log-uniform
    segment_seconds_max: float = 30.0


@dataclass
class TaskBSizes:
    n_train: int = 163
    n_validation: int = 56
    n_test: int = 56
    interview_seconds_min: float = 45.0  # uniform; the paper's interviews are 900-1500 s
    interview_seconds_max: float = 75.0


@dataclass
class FormatMix:
    """Share of files with each header variant (drawn independently per file)."""
    full_fraction: float = 0.02         # full 714-column output (large files)
    gaze_fraction: float = 0.2          # of the other files: frame..success, gaze, pose, AUs; else "core" (no gaze)
    face_id_fraction: float = 0.5
    spaced_fraction: float = 0.5        # OpenFace's ", " separators (leading spaces in names)
    crlf_fraction: float = 0.3
    no_final_newline_fraction: float = 0.2


@dataclass
class Behaviour:
    fps: float = 30.0
    low_conf_bursts_per_min: float = 2.0   # confidence < 0.9 for ~12 frames
    failed_bursts_per_min: float = 1.0     # success = 0 for ~8 frames
    elicitation: float = 0.0               # added to every subject's expressivity where it drives the face


@dataclass
class Labels:
    signal_share: float = 0.6           # share of each target's variance explained by the traits


@dataclass
class FitSettings:
    """How `calibrate=` fits a calibration (data/synth/calibrate.py)."""
    n_states: int = 64                  # k-means states of the reference
    rounds: int = 4                     # simulate-and-correct rounds
    seed: int = 0
    probe: PretrainSizes = field(default_factory=lambda: PretrainSizes(n_subjects=80, videos_per_subject=6.0))


@dataclass
class SynthConfig:
    out: str = MISSING
    kind: str = "pretrain"
    seed: int = 0
    workers: int = 2                    # processes writing files; does not change the output
    vocab: str = ""                     # a vocabulary directory: its centres become the states (counts: shares)
    calibration_file: str = DEFAULT_CALIBRATION   # the behaviour's fitted figures (data/synth/calibration.py)
    pretrain: PretrainSizes = field(default_factory=PretrainSizes)
    task_a: TaskASizes = field(default_factory=TaskASizes)
    task_b: TaskBSizes = field(default_factory=TaskBSizes)
    format: FormatMix = field(default_factory=FormatMix)
    behaviour: Behaviour = field(default_factory=Behaviour)
    labels: Labels = field(default_factory=Labels)
    calibrate: str = ""                 # a corpus or vocabulary directory: fit a calibration to it (writes out/calibration.yaml)
    calibrate_motion: str = ""          # a corpus for the motion targets (default: `calibrate` when it is a corpus)
    fit: FitSettings = field(default_factory=FitSettings)


def load_synth_config(overrides: Mapping[str, Any] | list[str] = ()) -> DictConfig:
    """Schema + configs/synth.yaml + overrides ({"task_a.n_subjects": 4} or ["task_a.n_subjects=4"])."""
    argv = list(overrides) if not isinstance(overrides, Mapping) else [f"{k}={v}" for k, v in overrides.items()]
    return load_config(SynthConfig, argv, DEFAULTS)


def build_behaviour(cfg: DictConfig, cal: Calibration | None = None) -> tuple[StateTable, Dynamics]:
    """The state table (the calibration's, or one state per centre of `vocab`) and the dynamics,
    from `cal` or else the config's calibration_file."""
    where = "calibration" if cal is not None else str(cfg.calibration_file)
    cal = cal if cal is not None else read_calibration(cfg.calibration_file)
    states = vocabulary_states(cfg.vocab) if cfg.vocab else None
    return behaviour_from(cal, fps=float(cfg.behaviour.fps), states=states, where=where)


def behaviour_record(cfg: DictConfig) -> str:
    """What a run's behaviour came from, as text kept in its directory: the calibration file's
    content, and the vocabulary's centroids.pt digest when the states are a vocabulary's."""
    text = resolve(cfg.calibration_file).read_text()
    if cfg.vocab:
        text += f"# states: vocab={cfg.vocab}, centroids.pt {file_digest(Path(cfg.vocab) / 'centroids.pt')}\n"
    return text


def vocabulary_states(vocab: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(centres (m, 17), counts (m,)) of a vocabulary directory's centroids.pt (ours or an imported one);
    centres that are not finite or have no frames are left out, AUs must be AU_INTENSITY in order."""
    path = Path(vocab) / "centroids.pt"
    if not path.exists():
        raise FileNotFoundError(f"vocab={vocab}: no centroids.pt there (a `cluster.py` output or import)")
    saved = check_fields(load_torch(path, "vocabulary"), path, "vocabulary",
                         {"centroids": Tensor(ndim=2, finite=False), "counts": Tensor(ndim=1, finite=False),
                          "au_names": list})
    names = [a.removesuffix("_r") for a in saved["au_names"]]
    if names != list(AU_INTENSITY):
        raise ValueError(f"{path}: its AUs {names} are not the generator's {list(AU_INTENSITY)}")
    centres = saved["centroids"].double().numpy()
    counts = saved["counts"].double().numpy()
    keep = np.isfinite(centres).all(axis=1) & (counts > 0)
    if not keep.any():
        raise ValueError(f"{path}: no finite centre with frames")
    return np.clip(centres[keep], 0.0, 5.0), counts[keep]


def _check(cfg: DictConfig) -> None:
    if cfg.kind not in KINDS:
        raise ConfigError(f"kind={cfg.kind!r}: expected one of {', '.join(KINDS)}")
    for key, value in OmegaConf.to_container(cfg.format).items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"format.{key}={value}: must lie in [0, 1]")
    if not 0.0 <= cfg.labels.signal_share <= 1.0:
        raise ConfigError(f"labels.signal_share={cfg.labels.signal_share}: must lie in [0, 1]")
    sizes = cfg[cfg.kind]
    for key, value in OmegaConf.to_container(sizes).items():
        if value < (0 if key in ("min_segments_per_subject", "n_validation", "n_test") else 1e-9):
            raise ConfigError(f"{cfg.kind}.{key}={value}: must be positive")
    lo_hi = [k for k in sizes if k.endswith("_min")]
    for lo in lo_hi:
        hi = lo[:-4] + "_max"
        if sizes[lo] > sizes[hi]:
            raise ConfigError(f"{cfg.kind}.{lo}={sizes[lo]} exceeds {cfg.kind}.{hi}={sizes[hi]}")
    a = cfg.task_a
    if cfg.kind == "task_a" and a.n_segments < a.n_subjects * a.min_segments_per_subject:
        raise ConfigError(f"task_a.n_segments={a.n_segments} is below task_a.n_subjects x "
                          f"task_a.min_segments_per_subject = {a.n_subjects * a.min_segments_per_subject}")
    if cfg.behaviour.fps <= 0:
        raise ConfigError(f"behaviour.fps={cfg.behaviour.fps}: must be positive")


def _file_variant(cfg, s: int, v: int) -> dict:
    u = rng_for(cfg.seed, cfg.kind, 3, s, v).random(6)
    f = cfg.format
    layout = "full" if u[0] < f.full_fraction else "gaze" if u[5] < f.gaze_fraction else "core"
    return {"layout": layout, "face_id": bool(u[1] < f.face_id_fraction), "spaced": bool(u[2] < f.spaced_fraction),
            "crlf": bool(u[3] < f.crlf_fraction), "final_newline": bool(u[4] >= f.no_final_newline_fraction)}


_WORKER: dict = {}   # per process: the config, state table and dynamics every video of a run shares


def _init_worker(cfg_container: dict) -> None:
    cfg = OmegaConf.create(cfg_container)
    table, dynamics = build_behaviour(cfg)
    _WORKER.update(cfg=cfg, table=table, dynamics=dynamics)


def subject(cfg, table: StateTable, dynamics: Dynamics, s: int) -> Subject:
    """Subject s of the dataset: its traits and parameters come from its own random stream."""
    rng = rng_for(cfg.seed, cfg.kind, 1, s)
    return make_subject(draw_traits(rng), rng, fps=float(cfg.behaviour.fps), table=table, dynamics=dynamics,
                        elicitation=float(cfg.behaviour.elicitation))


def video_signals(cfg, table: StateTable, dynamics: Dynamics, s: int, v: int, n: int, sub: Subject | None = None):
    """The simulated signals of video v (n rows) of subject s: what its CSV holds."""
    beh = cfg.behaviour
    sub = sub or subject(cfg, table, dynamics, s)
    return simulate_video(sub, n, rng_for(cfg.seed, cfg.kind, 2, s, v), fps=beh.fps,
                          low_conf_per_min=beh.low_conf_bursts_per_min, fail_per_min=beh.failed_bursts_per_min)


def _video(job: tuple) -> dict:
    """Simulate one video and write its CSV (unless a finished copy exists): runs in a worker."""
    s, v, n, path = job
    cfg, table, dynamics = _WORKER["cfg"], _WORKER["table"], _WORKER["dynamics"]
    beh = cfg.behaviour
    sig = video_signals(cfg, table, dynamics, s, v, n)
    variant = _file_variant(cfg, s, v)
    if not Path(path).exists():   # files appear atomically: an existing one is complete
        face_rng = rng_for(cfg.seed, cfg.kind, 4, s, v)
        pose, gz = head_pose(face_rng, n, beh.fps), gaze(face_rng, n, beh.fps)
        blocks = {"gaze": gz, "pose": pose}
        if variant["layout"] == "full":
            blocks.update(full_blocks(face_rng, sig.aus, pose, gz, beh.fps))
        rows = np.arange(n)
        head = [rows + 1.0] + ([np.zeros(n)] if variant["face_id"] else []) + [rows / beh.fps, sig.confidence,
                                                                               sig.success.astype(float)]
        order = {"full": ["gaze", "eye_lmk", "pose", "landmarks", "pdm"], "gaze": ["gaze", "pose"], "core": ["pose"]}
        body = np.concatenate([blocks[b] for b in order[variant["layout"]]] + [sig.aus, sig.presence], axis=1)
        body[sig.success == 0] = 0.0   # OpenFace writes zeros when tracking failed
        values = np.concatenate([np.stack(head, axis=1), body], axis=1)
        columns = openface_columns(face_id=variant["face_id"], layout=variant["layout"])
        write_openface_csv(path, columns, values, spaced=variant["spaced"], crlf=variant["crlf"],
                           final_newline=variant["final_newline"])
    return {"states": sig.states, "blinks": sig.blink_onsets,
            "layout": variant["layout"], "dropped": int(n - ((sig.success == 1) & (sig.confidence >= 0.9)).sum())}


def _csv_text(header: list[str], rows: list[list]) -> str:
    return "".join(",".join(map(str, r)) + "\n" for r in [header, *rows])


def generate(out: str | Path, cfg: DictConfig | Mapping[str, Any] | list[str] | None = None) -> Path:
    """Write one synthetic dataset into `out` and return it; a finished one with this config is reused.

    `cfg`: a resolved SynthConfig, or overrides for configs/synth.yaml ({"kind": "task_a", ...})."""
    if not isinstance(cfg, DictConfig):
        cfg = load_synth_config(cfg or {})
    cfg = OmegaConf.merge(cfg, {"out": str(out)})
    _check(cfg)
    table, dynamics = build_behaviour(cfg)        # a bad calibration or vocabulary stops here, before any file
    others = tuple(k for k in KINDS if k != cfg.kind)
    out = open_run_dir(out, cfg, ignore=("out", "workers", "calibrate", "calibrate_motion", "fit", *others))
    record = behaviour_record(cfg)
    kept = out / "behaviour.yaml"      # the calibration (and vocabulary) this dataset was drawn with
    if kept.exists() and kept.read_text() != record:
        raise RunDirError(f"{out} holds a dataset drawn with another calibration or vocabulary "
                          f"(see {kept}). Use another out= or delete {out}.")
    save_text(record, kept)
    if (out / "meta.json").exists():
        print(f"[synth] {out} already holds this dataset; reusing it")
        return out
    t0 = time.perf_counter()
    fps = float(cfg.behaviour.fps)
    plan = plan_videos(cfg, fps)
    subjects = [subject(cfg, table, dynamics, s) for s in range(len(plan.subjects))]
    traits = np.stack([sub.traits for sub in subjects])        # (n_subjects, n_traits)
    add_labels(plan, cfg, traits)

    jobs = [(s, v, n, out / "openface" / f"{vid}.csv") for vid, s, v, n in
            zip(plan.video_ids, plan.video_subject, plan.video_index, plan.video_rows)]
    jobs_order = np.argsort(-np.asarray(plan.video_rows), kind="stable")  # long files first: even load
    results: list[dict | None] = [None] * len(jobs)
    container = OmegaConf.to_container(cfg, resolve=True)
    if cfg.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=cfg.workers, initializer=_init_worker, initargs=(container,)) as pool:
            for i, res in zip(jobs_order, pool.map(_video, [jobs[i] for i in jobs_order], chunksize=8)):
                results[i] = res
    else:
        _init_worker(container)
        for i in jobs_order:
            results[i] = _video(jobs[i])

    targets = TASK_A_TARGETS if cfg.kind == "task_a" else TASK_B_TARGETS if cfg.kind == "task_b" else ()
    label_rows = [[vid, plan.subjects[s], split] + [f"{plan.targets[t][i]:g}" for t in targets]
                  for i, (vid, s, split) in enumerate(zip(plan.video_ids, plan.video_subject, plan.splits))]
    save_text(_csv_text(["video_id", "subject", "split", *targets], label_rows), out / "labels.csv")
    summary_keys = list(subjects[0].summary(fps))
    trait_rows = [[name, *(f"{x:.6f}" for x in sub.traits), *(f"{x:.6f}" for x in sub.summary(fps).values())]
                  for name, sub in zip(plan.subjects, subjects)]
    save_text(_csv_text(["subject", *TRAITS, *summary_keys], trait_rows), out / "traits.csv")
    as_tensor = lambda a: torch.from_numpy(np.array(a, copy=True))  # fresh strides: same bytes in and out of workers
    save_torch({"states": {vid: as_tensor(r["states"]) for vid, r in zip(plan.video_ids, results)},
                "blink_onsets": {vid: as_tensor(r["blinks"]) for vid, r in zip(plan.video_ids, results)},
                "fps": fps, "state_names": list(table.names),
                "state_families": [FAMILIES[f] for f in table.family],
                "prototypes": torch.from_numpy(table.prototypes).float(),  # (n_states, 17) apex before gains
                "au_names": list(AU_R_NAMES)}, out / "hidden.pt")
    layouts = [r["layout"] for r in results]
    rows = int(sum(plan.video_rows))
    meta = {"kind": cfg.kind, "seed": cfg.seed, "fps": fps, "n_subjects": len(plan.subjects),
            "n_videos": len(plan.video_ids), "n_rows": rows, "seconds": rows / fps,
            "rows_dropped_by_default_filter": int(sum(r["dropped"] for r in results)),
            "layouts": {k: layouts.count(k) for k in ("full", "gaze", "core")},
            "targets": list(targets), "splits": {k: plan.splits.count(k) for k in sorted(set(plan.splits))},
            "traits": list(TRAITS), "label_weights": {t: LABEL_WEIGHTS[t] for t in targets},
            "n_states": table.n, "au_names": list(AU_R_NAMES),
            "states_from": cfg.vocab or cfg.calibration_file,
            "calibration_file": cfg.calibration_file, "calibration_source": read_calibration(cfg.calibration_file).source}
    save_json(meta, out / "meta.json")
    print(f"[synth] {cfg.kind}: {meta['n_videos']} videos of {meta['n_subjects']} subjects, {rows} rows "
          f"({rows / fps / 60:.1f} min at {fps:g} fps) in {time.perf_counter() - t0:.1f} s -> {out}")
    return out


@dataclass
class SimulatedCorpus:
    """Frames as ingestion would keep them (every `step`-th row, confident tracked rows only)."""
    frames: np.ndarray       # (N, 17) float32
    offsets: np.ndarray      # (S+1,) int64
    gap_before: np.ndarray   # (N,) bool: a dropped row precedes this frame
    states: np.ndarray       # (N,) int64 hidden state of each frame
    n_states: int


def simulate_corpus(cfg: DictConfig, *, out_fps: float = 5.0, calibration: Calibration | None = None,
                    subjects: range | None = None) -> SimulatedCorpus:
    """The dataset `generate` would write for cfg, simulated in memory and sampled at out_fps as
    `ingest.py` keeps it (synthetic timestamps are row / fps, so the grid is every fps/out_fps-th row;
    min_confidence 0.9, failed rows dropped). For calibration and benchmarks: no files, one process;
    `subjects` keeps only those subjects' videos (so processes can share the work)."""
    _check(cfg)
    fps = float(cfg.behaviour.fps)
    step = max(1, int(round(fps / out_fps)))
    table, dynamics = build_behaviour(cfg, calibration)
    plan = plan_videos(cfg, fps)
    frames, gaps, states, lengths = [], [], [], []
    last_s, sub = -1, None
    for s, v, n in zip(plan.video_subject, plan.video_index, plan.video_rows):
        if subjects is not None and s not in subjects:
            continue
        if s != last_s:
            sub, last_s = subject(cfg, table, dynamics, s), s
        sig = video_signals(cfg, table, dynamics, s, v, n, sub)
        rows = np.arange(0, n, step)
        ok = (sig.success[rows] == 1) & (sig.confidence[rows] >= 0.9)
        kept = np.flatnonzero(ok)
        if len(kept) == 0:
            continue
        before = np.r_[-1, kept[:-1]]
        frames.append(sig.aus[rows[kept]].astype(np.float32))
        gaps.append(kept - before > 1)
        gaps[-1][0] = False
        states.append(sig.states[rows[kept]].astype(np.int64))
        lengths.append(len(kept))
    return SimulatedCorpus(frames=np.concatenate(frames), offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
                           gap_before=np.concatenate(gaps), states=np.concatenate(states), n_states=table.n)
