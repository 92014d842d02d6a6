"""Chu et al.'s CNN / LSTM / fusion and GTLE-Net: shapes, gradients, independence of the parts that must
be independent, PCA against NumPy's SVD, and that each network can fit a tiny set (a property a
correct model has; random tensors here, rendered faces in tests/test_au_training.py)."""
import numpy as np
import pytest
import torch

from losses.au_detection import expression_triplet, gtle_loss, max_margin, multilabel_ce
from models.chu import ChuCNN, ScoreFusion, StackedLSTM
from models.gtle import AUClassifiers, GTLENet
from models.pca import PCA
from models.registry import create_model, get_model, known_models

@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two spin-waiting OpenMP threads run ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL_GTLE = dict(encoder_widths=(4, 8, 8), classifier_widths=(4, 4, 8, 8, 8), n_aus=3)


def test_paper_cnn_has_alexnet_sizes_on_176_crops():
    cnn = ChuCNN(variant="paper", n_aus=12)
    assert (cnn.crop, cnn.face) == (176, 200)
    assert cnn.fc6.in_features == 256 * 4 * 4 and cnn.fc7.out_features == 4096 and cnn.fc8.out_features == 12
    assert sum(isinstance(m, torch.nn.Conv2d) for m in cnn.modules()) == 5          # 5 conv + 3 fc = 8 layers


def test_cnn_features_are_unit_fc7():
    cnn = ChuCNN(variant="small", n_aus=12).eval()
    f = cnn.features(torch.rand(3, 3, 56, 56))
    assert f.shape == (3, 256)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(3))


def test_fusion_shape_and_gradients_reach_both_streams():
    torch.manual_seed(0)
    fusion = ScoreFusion(n_aus=12, hidden=16)
    cnn = torch.randn(2, 7, 12, requires_grad=True)
    lstm = torch.rand(2, 7, 12, requires_grad=True)
    out = fusion(cnn, lstm)
    assert out.shape == (2, 7, 12)
    multilabel_ce(out, torch.randint(-1, 2, (2, 7, 12))).backward()
    for t in (cnn, lstm, fusion.fc1.weight, fusion.fc2.weight):
        assert t.grad is not None and bool(t.grad.abs().sum() > 0)
    # per frame: the same two layers at every time step (frame 3 alone gives frame 3's output)
    torch.testing.assert_close(fusion(cnn[:, 3], lstm[:, 3]), out[:, 3])
    # the scores are normalised before stacking: scaling a stream does not change the output
    torch.testing.assert_close(fusion(5 * cnn, lstm), out)


def test_hybrid_runs_a_video_through_all_parts():
    model = create_model("chu_hybrid", variant="small", pca_dim=16, lstm_hidden=8, lstm_layers=2).eval()
    model.pca.fit(torch.randn(40, 256))
    out = model(torch.rand(2, 4, 3, 56, 56))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"cnn": (2, 4, 12), "lstm": (2, 4, 12), "fusion": (2, 4, 12)}
    assert bool((out["lstm"].abs() <= 1).all())


def test_lstm_is_causal_so_right_padding_never_changes_a_frame():
    lstm = StackedLSTM(input_dim=6, hidden=8, layers=3, n_aus=4).eval()
    assert all(float(p.detach().abs().max()) <= 0.08 for p in lstm.parameters())
    x = torch.randn(1, 9, 6)
    padded = torch.cat([x, torch.zeros(1, 5, 6)], 1)
    torch.testing.assert_close(lstm(padded)[:, :9], lstm(x))


def test_pca_matches_numpy_svd():
    g = np.random.default_rng(0)
    x = g.normal(size=(300, 10)) @ g.normal(size=(10, 10)) + 3.0
    pca = PCA(dim=10, components=4).fit(torch.from_numpy(x).float(), chunk=70)   # several chunks
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(pca.explained.numpy(), (s ** 2 / (s ** 2).sum())[:4], rtol=1e-4)
    for k in range(4):   # up to sign
        np.testing.assert_allclose(np.abs(pca.components[k].numpy() @ vt[k]), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.abs(pca(torch.from_numpy(x).float()).numpy()), np.abs(xc @ vt[:4].T), atol=1e-3)
    with pytest.raises(RuntimeError, match="before fit"):
        PCA(dim=10, components=2)(torch.zeros(1, 10))


def test_gtle_mask_and_reconstruction_shapes():
    net = GTLENet(**SMALL_GTLE)
    out = net(torch.rand(2, 3, 32, 32))
    assert out["logits"].shape == (2, 3)
    assert out["masks"].shape == (2, 4, 1, 32, 32) and out["features"].shape == (2, 4, 3, 32, 32)
    assert out["reconstruction"].shape == (2, 3, 32, 32)
    assert bool(((out["masks"] >= 0) & (out["masks"] <= 1)).all())
    assert net.encoder.features(torch.rand(1, 3, 32, 32)).shape == (1, 8, 4, 4)
    assert net.encoder.embed(torch.rand(2, 3, 32, 32)).norm(dim=1).allclose(torch.ones(2))


def test_paper_gtle_has_a_16x16_global_feature_on_256_faces():
    net = create_model("gtle_net")
    assert net.encoder.downsample == 16 and net.encoder.out_channels == 256
    widths = [m.out_channels // 12 for m in net.classifiers.blocks if isinstance(m, torch.nn.Conv2d)]
    convs = [m for m in net.classifiers.blocks if isinstance(m, torch.nn.Conv2d)]
    assert widths == [16, 32, 64, 128, 256]
    assert all((c.kernel_size, c.stride, c.padding, c.groups) == ((7, 7), (2, 2), (3, 3), 12) for c in convs)


def test_au_classifier_k_sees_only_its_own_masked_feature():
    clf = AUClassifiers(n_aus=3, in_channels=3, widths=(4, 4, 4, 4, 4)).eval()
    c = torch.rand(1, 3, 3, 32, 32, requires_grad=True)
    clf(c)[0, 1].backward()
    per_au = c.grad.abs().flatten(2).sum(2)[0]                  # (3 AUs, 3 channels)
    assert bool((per_au[[0, 2]] == 0).all()) and bool((per_au[1] > 0).all())


def test_registry_kinds():
    assert get_model("chu_hybrid").kind == "au_detector" and get_model("gtle_net").inputs == "images"
    assert "chu_hybrid" not in known_models("sequence", "baseline") and "gtle_net" in known_models()


def blob_faces(n, n_aus, size, seed=0):
    """Tiny structured faces: AU k present <=> a bright square in cell k of a 4-wide grid, on noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n, n_aus), generator=g) * 2 - 1
    img = 0.1 * torch.rand(n, 3, size, size, generator=g)
    cell = size // 4
    for k in range(n_aus):
        r, c = divmod(k, 4)
        img[:, :, r * cell:(r + 1) * cell - 2, c * cell:(c + 1) * cell - 2] += 0.8 * (labels[:, k] > 0).float()[:, None, None, None]
    return img, labels


def _fit(params, loss_fn, steps, lr):
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_each_network_fits_a_tiny_set():
    torch.manual_seed(0)
    images, labels = blob_faces(8, 12, 56)
    cnn = ChuCNN(variant="small", dropout=0.0)
    _fit(cnn.parameters(), lambda: multilabel_ce(cnn(images), labels), 25, lr=1e-3)
    assert torch.equal(cnn(images) > 0, labels > 0)

    seqs, seq_labels = torch.randn(4, 20, 16), torch.randint(0, 2, (4, 20, 12)) * 2 - 1
    lstm = StackedLSTM(input_dim=16, hidden=32, layers=3, dropout=0.0)
    _fit(lstm.parameters(), lambda: max_margin(lstm(seqs), seq_labels), 150, lr=1e-2)
    assert float((torch.sign(lstm(seqs)) == seq_labels).float().mean()) > 0.95

    net = GTLENet(**SMALL_GTLE)
    img, lab = blob_faces(8, 3, 32)
    def loss():
        out = net(img)
        return gtle_loss(out["logits"], lab, out["reconstruction"], img)["loss"]
    _fit(net.parameters(), loss, 15, lr=3e-3)
    with torch.no_grad():   # batch statistics: at 32 px the last blocks are 1 x 1, too few for running ones
        assert torch.equal(net(img)["logits"] > 0, lab > 0)


def test_encoder_learns_to_order_triplets():
    torch.manual_seed(0)
    net = GTLENet(**SMALL_GTLE).encoder
    a, p, n = torch.rand(3, 6, 3, 32, 32).unbind(0)
    loss = lambda: expression_triplet(net.embed(a), net.embed(p), net.embed(n), 0.2)
    first = float(loss())
    _fit(net.parameters(), loss, 30, lr=3e-3)
    assert float(loss()) < 0.2 * first


@pytest.mark.gpu
def test_networks_and_losses_on_cuda_match_the_cpu():
    torch.manual_seed(0)
    cnn, fusion = ChuCNN(variant="small").eval(), ScoreFusion(n_aus=12)
    gtle = GTLENet(**SMALL_GTLE).eval()
    x, x32 = torch.rand(4, 3, 56, 56), torch.rand(2, 3, 32, 32)
    labels = torch.randint(-1, 2, (4, 12))
    cpu = [multilabel_ce(cnn(x), labels), fusion(cnn(x), torch.tanh(cnn(x))), gtle(x32)["logits"]]
    cnn, fusion, gtle = cnn.cuda(), fusion.cuda(), gtle.cuda()
    xc, lc = x.cuda(), labels.cuda()
    gpu = [multilabel_ce(cnn(xc), lc), fusion(cnn(xc), torch.tanh(cnn(xc))), gtle(x32.cuda())["logits"]]
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-3)
    pca = PCA(dim=256, components=8).cuda().fit(torch.randn(50, 256, device="cuda"))
    assert pca.components.device.type == "cuda"
