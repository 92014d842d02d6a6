"""A simulated OpenFace-like annotator: the noisy labels of Fung & McDuff's pretraining.

OpenFace 2.0 labelled their MS-Celeb images; here a model of its errors labels the rendered faces
from their truth. For AU a of a frame with true intensities x (17,):

    score_a = x_a + leak * sum_b C_ab x_b              co-occurring AUs bleed into each other
              + bias[subject, a]                        person-specific offsets (face shape, lines)
              + sigma_a (1 + growth x_a)(1 + |yaw|/30deg) eps        noise, larger at high intensity and pose
    label_a = score_a >= POSITIVE_AT                    thresholded presence
    failed  = |yaw| beyond ~35 deg, increasingly          (no labels: OpenFace lost the face)

`sigma_a` is calibrated per AU (a grid search on a sample of simulated truth) so the labels' F1
against the truth (positive = DISFA intensity >= 2, i.e. truth >= 1.5 before rounding) is OpenFace
2.0's F1 on DISFA in Fung & McDuff's Table III; the nine AUs that table omits get DEFAULT_F1, an
assumption. An AU whose target cannot be reached even without noise keeps sigma = 0 and is listed
in `unreachable`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data.openface.format import AU_INTENSITY

# Fung & McDuff, Table III, OpenFace 2.0 row (F1 %, DISFA)
OPENFACE_DISFA_F1 = {"AU01": 41.9, "AU02": 34.7, "AU04": 66.7, "AU06": 42.6, "AU09": 36.3,
                     "AU12": 60.8, "AU25": 90.3, "AU26": 55.8}
DEFAULT_F1 = 50.0
POSITIVE_AT = 1.5          # DISFA's rounded intensity >= 2
CO_OCCUR = [("AU01", "AU02"), ("AU06", "AU12"), ("AU06", "AU07"), ("AU25", "AU26"), ("AU04", "AU09"),
            ("AU04", "AU07"), ("AU10", "AU12"), ("AU15", "AU17"), ("AU17", "AU23"), ("AU12", "AU14"),
            ("AU09", "AU10"), ("AU20", "AU25")]


def _co_matrix() -> np.ndarray:
    c = np.zeros((len(AU_INTENSITY), len(AU_INTENSITY)))
    for a, b in CO_OCCUR:
        i, j = AU_INTENSITY.index(a), AU_INTENSITY.index(b)
        c[i, j] = c[j, i] = 1.0
    return c


@dataclass
class AnnotatorConfig:
    leak: float = 0.12            # share of a co-occurring AU's intensity that leaks into the score
    growth: float = 0.3           # noise grows with the AU's own intensity
    bias_sd: float = 0.2          # person-specific offset per AU
    fail_yaw_deg: float = 35.0    # half of the frames fail at this yaw ...
    fail_width_deg: float = 4.0   # ... with a logistic edge this wide
    targets: dict = field(default_factory=dict)   # per-AU F1 % overrides ({"AU05": 40.0})


def targets_for(cfg: AnnotatorConfig) -> np.ndarray:
    """(17,) F1 % targets in AU_INTENSITY order."""
    t = {**{a: DEFAULT_F1 for a in AU_INTENSITY}, **OPENFACE_DISFA_F1, **dict(cfg.targets)}
    unknown = set(t) - set(AU_INTENSITY)
    if unknown:
        raise ValueError(f"annotator.targets: unknown AU names {sorted(unknown)}")
    return np.array([t[a] for a in AU_INTENSITY])


def f1_scores(labels: np.ndarray, truth_pos: np.ndarray) -> np.ndarray:
    """(A,) F1 % per column of 0/1 arrays (N, A); 0 where an AU has neither positives nor predictions."""
    tp = (labels * truth_pos).sum(0)
    denom = labels.sum(0) + truth_pos.sum(0)
    return np.where(denom > 0, 200.0 * tp / np.maximum(denom, 1), 0.0)


@dataclass
class Annotator:
    cfg: AnnotatorConfig
    sigma: np.ndarray             # (17,) calibrated noise scale
    unreachable: list = field(default_factory=list)

    def parts(self, truth, subject, yaw, rng):
        """Score = base + sigma * spread (each (N, 17)), and the (N,) failure mask."""
        c = self.cfg
        truth = np.asarray(truth, dtype=np.float64)
        subjects, inverse = np.unique(subject, return_inverse=True)
        bias_rng = np.random.default_rng([int(rng.integers(2**31)), 1])
        bias = c.bias_sd * bias_rng.standard_normal((len(subjects), truth.shape[1]))[inverse]
        pose = 1.0 + np.abs(np.degrees(yaw))[:, None] / 30.0
        spread = (1 + c.growth * truth) * pose * rng.standard_normal(truth.shape)
        p_fail = 1.0 / (1.0 + np.exp(-(np.abs(np.degrees(yaw)) - c.fail_yaw_deg) / c.fail_width_deg))
        return truth + c.leak * truth @ _co_matrix() + bias, spread, rng.random(len(truth)) < p_fail

    def scores(self, truth, subject, yaw, rng):
        """(N, 17) noisy scores and (N,) failure mask."""
        base, spread, failed = self.parts(truth, subject, yaw, rng)
        return base + self.sigma * spread, failed

    def annotate(self, truth, subject, yaw, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Presence labels (N, 17) float32 0/1 and success (N,) bool for truth (N, 17), yaw (N,) rad."""
        s, failed = self.scores(truth, subject, yaw, rng)
        return (s >= POSITIVE_AT).astype(np.float32), ~failed


def calibrate(truth: np.ndarray, subject: np.ndarray, yaw: np.ndarray, *, cfg: AnnotatorConfig = AnnotatorConfig(),
              seed: int = 0, grid: int = 96) -> Annotator:
    """Per-AU sigma whose labels land nearest the F1 target on this sample (common random numbers)."""
    target = targets_for(cfg)
    pos = (np.asarray(truth) >= POSITIVE_AT).astype(np.float64)
    sigmas = np.concatenate([[0.0], np.geomspace(0.02, 20.0, grid - 1)])
    f1 = np.empty((grid, truth.shape[1]))
    base, spread, failed = Annotator(cfg=cfg, sigma=np.zeros(truth.shape[1])).parts(
        truth, subject, yaw, np.random.default_rng(seed))
    ok = ~failed
    base, spread, pos = base[ok], spread[ok], pos[ok]
    for g, sg in enumerate(sigmas):
        f1[g] = f1_scores((base + sg * spread >= POSITIVE_AT).astype(np.float64), pos)
    best = np.abs(f1 - target).argmin(axis=0)
    unreachable = [a for a, j, t in zip(AU_INTENSITY, range(len(target)), target) if f1[0, j] < t - 1.0]
    return Annotator(cfg=cfg, sigma=sigmas[best], unreachable=unreachable)
