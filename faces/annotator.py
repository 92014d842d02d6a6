"""A simulated OpenFace-like annotator: the noisy labels of Fung & McDuff's pretraining.

OpenFace 2.0 labelled their MS-Celeb images; here a model of its errors labels the rendered faces
from their truth. For AU a of a frame with true intensities x (17,):

    score_a = x_a + k_a (leak * sum_b C_ab x_b         co-occurring AUs bleed into each other
                         + bias[subject, a])            person-specific offsets (face shape, lines)
              + sigma_a (1 + growth x_a)(1 + |yaw|/30deg) eps        noise, larger at high intensity and pose
              with k_a = min(1, sigma_a / 0.3)
    label_a = score_a >= POSITIVE_AT                    thresholded presence
    failed  = |yaw| beyond ~35 deg, increasingly          (no labels: OpenFace lost the face)

`sigma_a` is calibrated per AU (a grid search on a sample of simulated truth) so the labels' F1
against the truth (positive = DISFA intensity >= 2, i.e. truth >= 1.5 before rounding) is OpenFace
2.0's F1 on DISFA in Fung & McDuff's Table III; the nine AUs that table omits get DEFAULT_F1, an
assumption. An AU the sample gives no way to calibrate (no positives: F1 is 0 at every sigma) is
listed in `unreachable` and gets the sigma nearest its target anyway.
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
        """truth, structured errors (leakage + person offsets), spread (each (N, 17)), failure mask (N,)."""
        c = self.cfg
        truth = np.asarray(truth, dtype=np.float64)
        subjects, inverse = np.unique(subject, return_inverse=True)
        bias_rng = np.random.default_rng([int(rng.integers(2**31)), 1])
        bias = c.bias_sd * bias_rng.standard_normal((len(subjects), truth.shape[1]))[inverse]
        pose = 1.0 + np.abs(np.degrees(yaw))[:, None] / 30.0
        spread = (1 + c.growth * truth) * pose * rng.standard_normal(truth.shape)
        p_fail = 1.0 / (1.0 + np.exp(-(np.abs(np.degrees(yaw)) - c.fail_yaw_deg) / c.fail_width_deg))
        return truth, c.leak * truth @ _co_matrix() + bias, spread, rng.random(len(truth)) < p_fail

    def scores(self, truth, subject, yaw, rng):
        """(N, 17) noisy scores and (N,) failure mask."""
        truth, structured, spread, failed = self.parts(truth, subject, yaw, rng)
        return combine(truth, structured, spread, self.sigma), failed

    def annotate(self, truth, subject, yaw, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Presence labels (N, 17) float32 0/1 and success (N,) bool for truth (N, 17), yaw (N,) rad."""
        s, failed = self.scores(truth, subject, yaw, rng)
        return (s >= POSITIVE_AT).astype(np.float32), ~failed


FULL_STRUCTURE_AT = 0.3   # noise level from which leakage and person offsets act in full


def combine(truth, structured, spread, sigma):
    """One knob per AU: sigma scales the noise, and (up to FULL_STRUCTURE_AT) the structured errors,
    so sigma = 0 is a perfect annotator and every F1 target below 100 can be reached."""
    return truth + np.minimum(1.0, sigma / FULL_STRUCTURE_AT) * structured + sigma * spread


def calibrate(truth: np.ndarray, subject: np.ndarray, yaw: np.ndarray, *, cfg: AnnotatorConfig = AnnotatorConfig(),
              seed: int = 0, grid: int = 160) -> Annotator:
    """Per-AU sigma whose labels' F1 on this sample is the target (common random numbers)."""
    target = targets_for(cfg)
    pos = (np.asarray(truth) >= POSITIVE_AT).astype(np.float64)
    sigmas = np.concatenate([[0.0], np.geomspace(0.002, 20.0, grid - 1)])
    f1 = np.empty((grid, truth.shape[1]))
    truth, structured, spread, failed = Annotator(cfg=cfg, sigma=np.zeros(truth.shape[1])).parts(
        truth, subject, yaw, np.random.default_rng(seed))
    ok = ~failed
    truth, structured, spread, pos = truth[ok], structured[ok], spread[ok], pos[ok]
    for g, sg in enumerate(sigmas):
        f1[g] = f1_scores((combine(truth, structured, spread, sg) >= POSITIVE_AT).astype(np.float64), pos)
    # F1 falls with sigma: bracket each target on the grid, then bisect (all AUs at once)
    above = (f1 >= target).sum(axis=0)                      # grid points with F1 still above the target
    lo = sigmas[np.clip(above - 1, 0, grid - 1)]
    hi = sigmas[np.clip(above, 0, grid - 1)]
    for _ in range(16):
        mid = (lo + hi) / 2
        f = f1_scores((combine(truth, structured, spread, mid) >= POSITIVE_AT).astype(np.float64), pos)
        lo, hi = np.where(f >= target, mid, lo), np.where(f >= target, hi, mid)
    sigma = (lo + hi) / 2
    got = f1_scores((combine(truth, structured, spread, sigma) >= POSITIVE_AT).astype(np.float64), pos)
    # without positives in the sample an AU's F1 is 0 at every sigma: nothing to calibrate it on
    unreachable = [a for j, a in enumerate(AU_INTENSITY) if abs(got[j] - target[j]) > 1.0]
    return Annotator(cfg=cfg, sigma=sigma, unreachable=unreachable)
