"""Synthetic OpenFace datasets with known hidden structure: `python synth.py out=DIR kind=...`.

    kind=pretrain   many subjects, many short videos, no targets
    kind=task_a     ~40 subjects, ~800 segments of up to 30 s, five PANSS-like ratings 1-7 per subject
    kind=task_b     ~275 interviews (one per subject), PHQ-8-like score 0-24, split 163/56/56

Writes (see ARCHITECTURE.md, "Synthetic datasets")
    DIR/openface/<subject>/<video>.csv   OpenFace 2.x FeatureExtraction files, header variants mixed
    DIR/labels.csv                       video_id, subject, split, targets
    DIR/hidden.pt                        hidden expression state of every CSV row, blink onsets, prototypes
    DIR/traits.csv                       hidden per-subject traits (and derived rates)
    DIR/meta.json                        kind, seed, sizes, target names; written last = finished

The behaviour model is in data/synth_model.py (states in data/synth_states.py), the dataset plan and
labels in data/synth_plan.py, the file format in data/openface_format.py. Every video draws from its
own random stream, so the output is byte-identical for a seed whatever `workers` is.
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

from data.openface.format import AU_R_NAMES, openface_columns, write_openface_csv
from data.synth.face import full_blocks, gaze, head_pose
from data.synth.behaviour import Subject, draw_traits, make_subject, simulate_video
from data.synth.plan import TASK_A_TARGETS, TASK_B_TARGETS, LABEL_WEIGHTS, add_labels, plan_videos, rng_for
from data.synth.states import FAMILIES, STATE_FAMILY, STATE_NAMES, TRAITS, prototypes
from utils.config import CONFIG_DIR, ConfigError, load_config
from utils.io import save_json, save_text, save_torch
from utils.runs import open_run_dir

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


@dataclass
class Labels:
    signal_share: float = 0.6           # share of each target's variance explained by the traits


@dataclass
class SynthConfig:
    out: str = MISSING
    kind: str = "pretrain"
    seed: int = 0
    workers: int = 2                    # processes writing files; does not change the output
    pretrain: PretrainSizes = field(default_factory=PretrainSizes)
    task_a: TaskASizes = field(default_factory=TaskASizes)
    task_b: TaskBSizes = field(default_factory=TaskBSizes)
    format: FormatMix = field(default_factory=FormatMix)
    behaviour: Behaviour = field(default_factory=Behaviour)
    labels: Labels = field(default_factory=Labels)


def load_synth_config(overrides: Mapping[str, Any] | list[str] = ()) -> DictConfig:
    """Schema + configs/synth.yaml + overrides ({"task_a.n_subjects": 4} or ["task_a.n_subjects=4"])."""
    argv = list(overrides) if not isinstance(overrides, Mapping) else [f"{k}={v}" for k, v in overrides.items()]
    return load_config(SynthConfig, argv, DEFAULTS)


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


def _video(job: tuple) -> dict:
    """Simulate one video and write its CSV (unless a finished copy exists): runs in a worker."""
    cfg, sub, s, v, n, path = job
    beh = cfg.behaviour
    sig = simulate_video(sub, n, rng_for(cfg.seed, cfg.kind, 2, s, v), fps=beh.fps,
                         low_conf_per_min=beh.low_conf_bursts_per_min, fail_per_min=beh.failed_bursts_per_min)
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
    others = tuple(k for k in KINDS if k != cfg.kind)
    out = open_run_dir(out, cfg, ignore=("out", "workers", *others))
    if (out / "meta.json").exists():
        print(f"[synth] {out} already holds this dataset; reusing it")
        return out
    t0 = time.perf_counter()
    fps = float(cfg.behaviour.fps)
    plan = plan_videos(cfg, fps)
    subjects: list[Subject] = []
    for s in range(len(plan.subjects)):
        rng = rng_for(cfg.seed, cfg.kind, 1, s)
        subjects.append(make_subject(draw_traits(rng), rng, fps=fps))
    traits = np.stack([sub.traits for sub in subjects])        # (n_subjects, n_traits)
    add_labels(plan, cfg, traits)

    within = np.zeros(len(plan.subjects), dtype=np.int64)
    jobs = []
    for vid, s, n in zip(plan.video_ids, plan.video_subject, plan.video_rows):
        jobs.append((cfg, subjects[s], s, int(within[s]), n, out / "openface" / f"{vid}.csv"))
        within[s] += 1
    jobs_order = np.argsort(-np.asarray(plan.video_rows), kind="stable")  # long files first: even load
    results: list[dict | None] = [None] * len(jobs)
    if cfg.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            for i, res in zip(jobs_order, pool.map(_video, [jobs[i] for i in jobs_order], chunksize=4)):
                results[i] = res
    else:
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
                "fps": fps, "state_names": list(STATE_NAMES),
                "state_families": [FAMILIES[f] for f in STATE_FAMILY],
                "prototypes": torch.from_numpy(prototypes()).float(),  # (n_states, 17) apex before gains
                "au_names": list(AU_R_NAMES)}, out / "hidden.pt")
    layouts = [r["layout"] for r in results]
    rows = int(sum(plan.video_rows))
    meta = {"kind": cfg.kind, "seed": cfg.seed, "fps": fps, "n_subjects": len(plan.subjects),
            "n_videos": len(plan.video_ids), "n_rows": rows, "seconds": rows / fps,
            "rows_dropped_by_default_filter": int(sum(r["dropped"] for r in results)),
            "layouts": {k: layouts.count(k) for k in ("full", "gaze", "core")},
            "targets": list(targets), "splits": {k: plan.splits.count(k) for k in sorted(set(plan.splits))},
            "traits": list(TRAITS), "label_weights": {t: LABEL_WEIGHTS[t] for t in targets},
            "n_states": len(STATE_NAMES), "au_names": list(AU_R_NAMES)}
    save_json(meta, out / "meta.json")
    print(f"[synth] {cfg.kind}: {meta['n_videos']} videos of {meta['n_subjects']} subjects, {rows} rows "
          f"({rows / fps / 60:.1f} min at {fps:g} fps) in {time.perf_counter() - t0:.1f} s -> {out}")
    return out
