"""PCC, RMSE, CCC against their textbook formulas written out in NumPy (CCC: Lin 1989, 1/n moments,
as AVEC 2019's depression baseline); constant predictions are 0 and flagged, never NaN."""
import math

import numpy as np
import pytest

from losses.metrics import regression_metrics, regression_metrics_many, selection_score


def _numpy(p, t):
    p, t = np.asarray(p, float), np.asarray(t, float)
    pc, tc = p - p.mean(), t - t.mean()
    pcc = (pc * tc).sum() / math.sqrt((pc ** 2).sum() * (tc ** 2).sum())
    rmse = math.sqrt(((p - t) ** 2).mean())
    # Lin's concordance: population (1/n) covariance and variances
    cov, vp, vt = (pc * tc).mean(), (pc ** 2).mean(), (tc ** 2).mean()
    ccc = 2 * cov / (vp + vt + (p.mean() - t.mean()) ** 2)
    return pcc, rmse, ccc


def test_ccc_is_lins_by_hand():
    """p = t - 1 on three items: means 2 and 3, variances and covariance 2/3 (1/n), so Lin's
    CCC = (4/3) / (2/3 + 2/3 + 1) = 4/7; the (n - 1) convention would give 2 / 3 instead."""
    got = regression_metrics([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert got["ccc"] == pytest.approx(4 / 7, abs=1e-12)
    assert got["pcc"] == pytest.approx(1.0, abs=1e-12) and got["rmse"] == pytest.approx(1.0, abs=1e-12)
    # a perfect prediction is 1 and a reversed one -1 (centred: no mean shift)
    assert regression_metrics([1.0, 5.0, 3.0], [1.0, 5.0, 3.0])["ccc"] == pytest.approx(1.0, abs=1e-12)
    assert regression_metrics([5.0, 1.0, 3.0], [1.0, 5.0, 3.0])["ccc"] == pytest.approx(-1.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_numpy(seed):
    """Expected: the textbook formulas written out in `_numpy` (CCC: Lin's, 1/n moments)."""
    rng = np.random.default_rng(seed)
    t = rng.integers(1, 8, 40).astype(float)
    p = t * rng.uniform(-1, 1) + rng.normal(0, 2, 40) + rng.normal()
    got = regression_metrics(p, t)
    pcc, rmse, ccc = _numpy(p, t)
    assert got["pcc"] == pytest.approx(pcc, abs=1e-10)
    assert got["rmse"] == pytest.approx(rmse, abs=1e-10)
    assert got["ccc"] == pytest.approx(ccc, abs=1e-10)
    assert got["constant"] is False


def test_constant_prediction_is_zero_and_flagged():
    t = np.array([1.0, 3.0, 2.0, 7.0])
    got = regression_metrics(np.full(4, 3.25), t)
    assert got == {"pcc": 0.0, "rmse": pytest.approx(math.sqrt(((3.25 - t) ** 2).mean())), "ccc": 0.0, "constant": True}
    assert regression_metrics(t, np.full(4, 2.0))["constant"]        # constant targets too
    assert regression_metrics([5.0], [4.0])["pcc"] == 0.0             # one item: no correlation


def test_selection_score_orders_by_metric():
    a, b = {"pcc": 0.5, "ccc": 0.2, "rmse": 2.0}, {"pcc": 0.3, "ccc": 0.4, "rmse": 1.0}
    assert selection_score(b, "ccc") > selection_score(a, "ccc")
    assert selection_score(a, "pcc") > selection_score(b, "pcc")
    assert selection_score(b, "rmse") > selection_score(a, "rmse")
    with pytest.raises(ValueError):
        selection_score(a, "r2")


def test_many_at_once_equals_one_by_one():
    rng = np.random.default_rng(3)
    t = rng.normal(size=25)
    preds = rng.normal(size=(6, 25))
    preds[2] = 1.5  # a constant row among them
    many = regression_metrics_many(preds, t)
    for p, m in zip(preds, many):
        one = regression_metrics(p, t)
        assert m["constant"] == one["constant"]
        for k in ("pcc", "rmse", "ccc"):
            assert m[k] == pytest.approx(one[k], abs=1e-12)
    assert many[2]["constant"] and many[2]["pcc"] == 0.0
    pcc, rmse, ccc = _numpy(preds[0], t)
    assert many[0]["pcc"] == pytest.approx(pcc) and many[0]["ccc"] == pytest.approx(ccc)
