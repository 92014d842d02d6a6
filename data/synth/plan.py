"""What a synthetic dataset holds: its subjects, their videos and lengths, labels and splits.

Labels are a noisy function of the hidden subject traits: each target is a weighted sum of traits
(weights below), scaled so that a share `signal_share` of its variance is signal, then mapped to
the target's scale (PANSS items 1-7, PHQ-8 0-24) and rounded. Every trait also shapes behaviour
(see data/synth/behaviour.py), so the targets are learnable from faces, but never exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data.synth.states import TRAIT_CORR, TRAITS
from data.tasks.targets import TASK_TARGETS

TASK_A_TARGETS, TASK_B_TARGETS = TASK_TARGETS["task_a"], TASK_TARGETS["task_b"]
SPLITS_B = ("train", "validation", "test")

# rows: targets, columns: TRAITS (expressivity, positivity, tension, tempo, talkativeness, blinkiness)
LABEL_WEIGHTS = {
    "conceptual_disorganisation": [-0.3, 0.0, 0.3, 0.6, 0.0, 0.3],
    "flow_of_conversation":       [-0.6, -0.2, 0.0, -0.3, -0.6, 0.0],
    "hallucinations":             [0.0, -0.3, 0.5, 0.2, 0.0, 0.5],
    "suspiciousness":             [0.0, -0.4, 0.8, 0.0, -0.2, 0.2],
    "delusions":                  [-0.2, -0.3, 0.6, 0.3, 0.0, 0.0],
    "phq8":                       [-0.4, -0.6, 0.3, -0.4, -0.3, 0.1],
}
assert all(len(w) == len(TRAITS) for w in LABEL_WEIGHTS.values())


def rng_for(seed: int, kind: str, *key: int) -> np.random.Generator:
    """Independent stream per (seed, kind, purpose, ids): one video's data never depends on another's."""
    return np.random.default_rng([seed, ("pretrain", "task_a", "task_b").index(kind), *key])


@dataclass
class Plan:
    subjects: list[str]
    video_subject: list[int]          # subject index of each video
    video_ids: list[str]              # "s003/v0012"
    video_index: list[int]            # number of the video within its subject (12 for v0012)
    video_rows: list[int]             # CSV rows of each video
    splits: list[str]                 # per video
    targets: dict[str, list[float]] = field(default_factory=dict)  # per video


def _subject_names(n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"s{i:0{width}d}" for i in range(n)]


def _log_uniform(rng, lo: float, hi: float, size: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def plan_videos(cfg, fps: float) -> Plan:
    """Subjects, videos and their lengths; labels are added by `add_labels`."""
    rng = rng_for(cfg.seed, cfg.kind, 0)
    if cfg.kind == "pretrain":
        c = cfg.pretrain
        per_subject = 1 + rng.poisson(max(c.videos_per_subject - 1, 0.0), c.n_subjects)
        seconds = _log_uniform(rng, c.video_seconds_min, c.video_seconds_max, int(per_subject.sum()))
    elif cfg.kind == "task_a":
        c = cfg.task_a
        spare = c.n_segments - c.min_segments_per_subject * c.n_subjects  # >= 0, checked with the config
        share = rng.dirichlet(np.full(c.n_subjects, 4.0))  # some patients talk more than others
        per_subject = c.min_segments_per_subject + rng.multinomial(spare, share)
        seconds = _log_uniform(rng, c.segment_seconds_min, c.segment_seconds_max, c.n_segments)
    else:
        c = cfg.task_b
        per_subject = np.ones(c.n_train + c.n_validation + c.n_test, dtype=np.int64)
        seconds = rng.uniform(c.interview_seconds_min, c.interview_seconds_max, len(per_subject))
    subjects = _subject_names(len(per_subject))
    video_subject = np.repeat(np.arange(len(subjects)), per_subject).tolist()
    video_ids = [f"{subjects[s]}/v{j:04d}" for s, k in zip(range(len(subjects)), per_subject)
                 for j in range(k)]
    rows = np.maximum(np.rint(seconds * fps).astype(np.int64), 1).tolist()
    video_index = [j for k in per_subject for j in range(k)]
    return Plan(subjects=subjects, video_subject=video_subject, video_ids=video_ids, video_index=video_index,
                video_rows=rows, splits=["all"] * len(video_ids))


def add_labels(plan: Plan, cfg, traits: np.ndarray) -> None:
    """Per-subject targets (and task B splits) from traits (n_subjects, n_traits), copied to videos."""
    if cfg.kind == "pretrain":
        return
    rng = rng_for(cfg.seed, cfg.kind, 5)
    names = TASK_A_TARGETS if cfg.kind == "task_a" else TASK_B_TARGETS
    share = cfg.labels.signal_share
    for name in names:
        w = np.asarray(LABEL_WEIGHTS[name])
        signal = traits @ w / np.sqrt(w @ TRAIT_CORR @ w)   # unit variance over the population
        z = np.sqrt(share) * signal + np.sqrt(1 - share) * rng.standard_normal(len(traits))
        if cfg.kind == "task_a":
            score = np.clip(np.rint(3.0 + 1.4 * z), 1, 7)
        else:   # right-skewed like AVEC 2019 (median ~6)
            score = np.clip(np.rint(24 / (1 + np.exp(1.0 - 1.1 * z))), 0, 24)
        plan.targets[name] = [float(score[s]) for s in plan.video_subject]
    if cfg.kind == "task_b":
        c = cfg.task_b
        order = rng.permutation(len(plan.subjects))
        split_of = np.empty(len(plan.subjects), dtype=object)
        split_of[order[:c.n_train]] = "train"
        split_of[order[c.n_train:c.n_train + c.n_validation]] = "validation"
        split_of[order[c.n_train + c.n_validation:]] = "test"
        plan.splits = [str(split_of[s]) for s in plan.video_subject]
