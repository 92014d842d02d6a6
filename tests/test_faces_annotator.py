"""The simulated OpenFace annotator lands on its calibration targets (Fung & McDuff, Table III)."""
from __future__ import annotations

import numpy as np
import pytest

from data.openface.format import AU_INTENSITY
from faces.annotator import OPENFACE_DISFA_F1, POSITIVE_AT, AnnotatorConfig, calibrate, f1_scores, targets_for
from faces.synthetic import expression_sample

# Stated tolerance: on the calibration people with fresh noise (and freshly drawn person offsets),
# every AU with at least 1000 positive frames lands within 3 F1 points of its target, every AU with
# 200-999 within 6; on other people (another sample of the same population), the mean absolute error
# over Table III's eight AUs (those with 200 positives) is within 6 points.
IN_SAMPLE_TOL, RARE_TOL, HELD_OUT_MEAN_TOL, MIN_POSITIVES = 3.0, 6.0, 6.0, 200


@pytest.fixture(scope="module")
def calibrated():
    sample = expression_sample(seed=0, subjects=range(150), frames=400, fps=20.0)
    return sample, calibrate(*sample, seed=0)


def _f1(ann, sample, seed):
    truth, subject, yaw = sample
    labels, ok = ann.annotate(truth, subject, yaw, np.random.default_rng(seed))
    return f1_scores(labels[ok], (truth[ok] >= POSITIVE_AT).astype(float)), ok


def test_annotator_f1_within_tolerance_of_its_targets(calibrated):
    sample, ann = calibrated
    f1, ok = _f1(ann, sample, seed=11)
    target = targets_for(AnnotatorConfig())
    n_pos = (sample[0][ok] >= POSITIVE_AT).sum(0)
    assert (n_pos >= MIN_POSITIVES).sum() >= 10
    for au, got, want, n in zip(AU_INTENSITY, f1, target, n_pos):
        if n >= MIN_POSITIVES:
            assert abs(got - want) <= (IN_SAMPLE_TOL if n >= 1000 else RARE_TOL), (au, got, want, n)
    assert 0.03 < 1 - ok.mean() < 0.3          # OpenFace-like failures at large yaw, not everywhere


def test_annotator_generalises_to_other_people(calibrated):
    _, ann = calibrated
    other = expression_sample(seed=0, subjects=range(1000, 1150), frames=400, fps=20.0)
    f1, ok = _f1(ann, other, seed=12)
    enough = (other[0][ok] >= POSITIVE_AT).sum(0) >= MIN_POSITIVES
    aus = [a for a in OPENFACE_DISFA_F1 if enough[AU_INTENSITY.index(a)]]
    assert len(aus) >= 6
    idx = [AU_INTENSITY.index(a) for a in aus]
    err = np.abs(f1[idx] - np.array([OPENFACE_DISFA_F1[a] for a in aus]))
    assert err.mean() <= HELD_OUT_MEAN_TOL, dict(zip(aus, f1[idx].round(1)))


def test_labels_are_noisy_in_the_ways_openface_is(calibrated):
    (truth, subject, yaw), ann = calibrated
    labels, ok = ann.annotate(truth, subject, yaw, np.random.default_rng(3))
    pos = truth >= POSITIVE_AT
    assert labels[ok][~pos[ok]].mean() > 0.002          # false positives exist
    assert (1 - labels[ok][pos[ok]]).mean() > 0.05      # and misses
    assert np.abs(np.degrees(yaw[~ok])).mean() > np.abs(np.degrees(yaw[ok])).mean() + 15   # failures at large pose


def test_unknown_target_names_are_refused():
    with pytest.raises(ValueError, match="AU99"):
        targets_for(AnnotatorConfig(targets={"AU99": 40.0}))
