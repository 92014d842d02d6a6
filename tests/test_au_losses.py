"""The face-to-AU losses against their formulas written out element by element (plain Python floats)."""
import math

import pytest
import torch

from losses.au_detection import (FEC_MARGINS, expression_triplet, gtle_loss, max_margin, multilabel_ce,
                                 positive_weights, reconstruction_loss)


def _labels(shape, seed=0):
    return torch.randint(-1, 2, shape, generator=torch.Generator().manual_seed(seed))   # -1, 0, 1


def test_multilabel_ce_is_chu_formula_with_missing_labels_dropped_but_counted():
    logits, labels = torch.randn(6, 12, dtype=torch.float64), _labels((6, 12))
    expected = 0.0
    for b in range(6):
        frame = 0.0
        for l in range(12):
            p = 1 / (1 + math.exp(-float(logits[b, l])))
            frame += (math.log(p) if labels[b, l] > 0 else 0.0) + (math.log(1 - p) if labels[b, l] < 0 else 0.0)
        expected += -frame / 12                     # divided by L = 12 whatever the number of zeros
    assert float(multilabel_ce(logits, labels)) == pytest.approx(expected / 6, rel=1e-12)
    # GTLE's L_au: the same terms summed over AUs
    assert float(multilabel_ce(logits, labels, per_au_mean=False)) == pytest.approx(12 * expected / 6, rel=1e-12)


def test_weighted_multilabel_ce_scales_each_aus_positive_term():
    logits, labels = torch.randn(5, 3, dtype=torch.float64), torch.tensor([[1, -1, 0], [-1, -1, 1], [-1, 0, 1],
                                                                          [-1, -1, -1], [1, -1, 1]])
    w = positive_weights((labels > 0).sum(0), (labels < 0).sum(0))
    assert w.tolist() == [1.5, 1.0, 1.0]        # AU0: 3 negatives / 2 positives; AU1 none; AU2: 1 / 3 -> 1
    expected = 0.0
    for b in range(5):
        for l in range(3):
            p = 1 / (1 + math.exp(-float(logits[b, l])))
            if labels[b, l] > 0:
                expected -= float(w[l]) * math.log(p) / 3
            elif labels[b, l] < 0:
                expected -= math.log(1 - p) / 3
    assert float(multilabel_ce(logits, labels, pos_weight=w)) == pytest.approx(expected / 5, rel=1e-12)


def test_label_zero_has_no_effect_whatever_the_score():
    logits, labels = torch.randn(4, 12, requires_grad=True), _labels((4, 12), seed=1)
    multilabel_ce(logits, labels).backward()
    assert bool((logits.grad[labels == 0] == 0).all()) and bool((logits.grad[labels != 0] != 0).all())
    moved = logits.detach().clone()
    moved[labels == 0] += 100 * torch.randn(int((labels == 0).sum()))
    assert float(multilabel_ce(moved, labels)) == float(multilabel_ce(logits.detach(), labels))
    # a frame with every label missing contributes exactly 0 but still counts in the mean over frames
    all_missing = torch.zeros(1, 12, dtype=torch.long)
    both = multilabel_ce(torch.cat([logits.detach(), torch.randn(1, 12)]), torch.cat([labels, all_missing]))
    assert float(both) == pytest.approx(float(multilabel_ce(logits.detach(), labels)) * 4 / 5, rel=1e-6)


def test_ce_is_finite_for_saturated_logits():
    logits = torch.tensor([[80.0, -80.0]])
    assert float(multilabel_ce(logits, torch.tensor([[-1, 1]]))) == pytest.approx(80.0, rel=1e-6)


def test_max_margin_is_chu_eq4_per_frame():
    scores, labels = torch.rand(5, 12, dtype=torch.float64) * 2 - 1, _labels((5, 12), seed=2)
    labels[3] = 0                                   # a frame without labels adds 0
    expected = 0.0
    for b in range(5):
        n0 = sum(1 for l in range(12) if labels[b, l] != 0)
        hinge = sum(max(0.0, 0.5 - float(labels[b, l]) * float(scores[b, l])) for l in range(12) if labels[b, l] != 0)
        expected += hinge / n0 if n0 else 0.0
    assert float(max_margin(scores, labels, margin=0.5)) == pytest.approx(expected / 5, rel=1e-12)


def test_max_margin_gradient_is_minus_y_over_n0_inside_the_margin():
    scores = torch.tensor([[0.9, 0.2, -0.3, 0.0]], requires_grad=True)
    labels = torch.tensor([[1, 1, -1, 0]])
    max_margin(scores, labels, margin=0.5).backward()
    # y s = 0.9 (outside the margin: 0), 0.2 and 0.3 (inside: -y / n0 with n0 = 3), label 0: 0
    torch.testing.assert_close(scores.grad, torch.tensor([[0.0, -1 / 3, 1 / 3, 0.0]]))


def test_triplet_loss_is_an_eq1():
    g = torch.Generator().manual_seed(3)
    a, p, n = (torch.randn(7, 16, generator=g, dtype=torch.float64) for _ in range(3))
    margin = torch.tensor([0.1, 0.2] * 3 + [0.2], dtype=torch.float64)
    expected = 0.0
    for i in range(7):
        d = lambda u, v: sum((float(u[i, j]) - float(v[i, j])) ** 2 for j in range(16))
        m = float(margin[i])
        expected += max(0.0, d(a, p) - d(a, n) + m) + max(0.0, d(a, p) - d(p, n) + m)
    assert float(expression_triplet(a, p, n, margin)) == pytest.approx(expected / 7, rel=1e-12)
    # a well-separated triplet costs nothing; swapping positive and negative costs
    e = torch.eye(16, dtype=torch.float64)
    assert float(expression_triplet(e[:1], e[:1], e[1:2], 0.2)) == 0.0
    # d_ap = 2, d_an = 0, d_pn = 2: (2 - 0 + 0.2) + (2 - 2 + 0.2)
    assert float(expression_triplet(e[:1], e[1:2], e[:1], 0.2)) == pytest.approx(2.4)


def test_fec_margins():
    assert FEC_MARGINS == {"ONE_CLASS_TRIPLET": 0.1, "TWO_CLASS_TRIPLET": 0.2, "THREE_CLASS_TRIPLET": 0.2}


def test_gtle_loss_is_au_plus_a_thousandth_of_half_the_squared_error_sum():
    logits, labels = torch.randn(2, 12), _labels((2, 12), seed=4)
    image, rec = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    half_sse = 0.5 * ((rec - image) ** 2).sum() / 2
    assert float(reconstruction_loss(rec, image)) == pytest.approx(float(half_sse), rel=1e-6)
    out = gtle_loss(logits, labels, rec, image)
    au = float(multilabel_ce(logits, labels, per_au_mean=False))
    assert float(out["loss"]) == pytest.approx(au + 0.001 * float(half_sse), rel=1e-6)
    with pytest.raises(ValueError, match="differ"):
        reconstruction_loss(rec, image[:, :1])
