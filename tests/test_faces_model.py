"""Fung & McDuff's CNN: Table I's parameter count, head replacement, and it overfits a tiny set."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models  # noqa: F401  (fills the registry)
from faces.fit import FitConfig, fit, predict
from models.registry import create_model, get_model


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)     # as faces.py on the CPU; spin-waiting threads crawl on a shared machine
    yield
    torch.set_num_threads(before)


def _table_i_parameters(n_out: int) -> int:
    """Counted by hand from Table I: 3x3 convolutions 64-64 / 128-128 / 256x3 / 256x3 on a 1-channel
    64x64 input, FC 1024-1024, output n_out."""
    convs = [(1, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 256), (256, 256), (256, 256)]
    fcs = [(256 * 4 * 4, 1024), (1024, 1024), (1024, n_out)]
    return sum(9 * i * o + o for i, o in convs) + sum(i * o + o for i, o in fcs)


def test_full_width_network_matches_table_i():
    assert get_model("au_cnn").kind == "au_detector" and get_model("au_cnn").inputs == "images"
    net = create_model("au_cnn", n_outputs=17)
    assert sum(p.numel() for p in net.parameters()) == _table_i_parameters(17)
    assert net(torch.zeros(2, 1, 64, 64)).shape == (2, 17)
    trunk = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("head")}
    net.replace_head(12, generator=torch.Generator().manual_seed(0))
    assert net(torch.zeros(2, 1, 64, 64)).shape == (2, 12)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in trunk.items())   # fine-tuning keeps the trunk


def test_cnn_overfits_a_tiny_set(one_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = (F.interpolate(torch.rand(12, 1, 4, 4, generator=g), size=32, mode="bilinear") * 255).to(torch.uint8)
    y = (torch.rand(12, 5, generator=g) < 0.4).float()        # random labels: only memorising fits them
    y[0, 0] = float("nan")                                    # unlabelled entries are left out of the loss
    net = create_model("au_cnn", n_outputs=5, width=0.25, fc=64, image_size=32, conv_dropout=0.0, fc_dropout=0.0)
    fit(net, train=(x, y), val=(x, y), cfg=FitConfig(lr=1e-3, batch_size=12, max_epochs=40, patience=40,
                                                      augment=False), progress=False)
    p = predict(net, x)
    known = ~torch.isnan(y)
    assert torch.equal((p[known] >= 0.5).float(), y[known])


def test_balanced_bce_matches_its_formula_and_skips_unlabelled_entries():
    from faces.fit import balancing_weights, masked_bce
    labels = torch.tensor([[1.0, 0.0, float("nan")], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, float("nan"), 1.0]])
    w = balancing_weights(labels)
    assert w.tolist() == [3.0, 1.0, 1.0]          # AU0: 3 negatives / 1 positive; AU1 has none; AU2: 1/2 -> 1
    logits = torch.tensor([[0.3, -1.0, 5.0], [0.2, 0.1, -0.4], [-2.0, 0.0, 0.7], [1.5, 9.0, 0.0]])
    total, n = 0.0, 0
    for i in range(4):
        for a in range(3):
            y = float(labels[i, a])
            if y != y:
                continue
            p = 1 / (1 + np.exp(-float(logits[i, a])))
            total += -(float(w[a]) * y * np.log(p) + (1 - y) * np.log(1 - p))
            n += 1
    assert float(masked_bce(logits, labels, w)) == pytest.approx(total / n, rel=1e-6)
    assert float(masked_bce(logits, labels)) < float(masked_bce(logits, labels, w))
