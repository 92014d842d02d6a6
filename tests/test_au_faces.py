"""The face-side pieces of part 2 on rendered faces: triplets labelled by AU distance, presence labels,
F1, the face-feature corpus, and the networks fitting a tiny rendered set."""
import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from data.fec import read_fec, write_fec
from data.openface.corpus import FrameCorpus
from data.tasks.sequences import SequenceDataset
from faces.au_fit import f1_per_au, to_images
from faces.clips import CHU_AUS, presence_labels, render_clips
from faces.face_features import face_feature_corpus, kept_rows
from faces.triplets import expression_class, image_rows, make_triplets, odd_one_out
from losses.au_detection import gtle_loss, multilabel_ce
from models.chu import ChuCNN
from models.gtle import GTLENet


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clips():
    return render_clips(subjects=[900_000, 900_001], videos=1, frames=8, size=64, fps=5.0, seed=3)


def _faces(n=60, people=12, seed=0):
    g = np.random.default_rng(seed)
    aus = np.clip(g.gamma(0.6, 1.0, (n, 17)) * (g.random((n, 17)) < 0.3), 0, 5)
    return aus, g.integers(0, people, n)


def test_noise_free_annotators_label_the_closest_pair_anchor_positive():
    aus, person = _faces()
    t = make_triplets(aus, person, n=200, noise=0.0, seed=1)
    assert len(t) == 200 and bool((t.labels == t.labels[:, :1]).all())        # all six agree
    rows = image_rows(t)[np.arange(len(t))[:, None], t.ordered()]             # (n, 3) anchor, positive, negative
    d = lambda a, b: np.linalg.norm(aus[rows[:, a]] - aus[rows[:, b]], axis=1)
    assert bool((d(0, 1) <= d(0, 2)).all() and (d(0, 1) <= d(1, 2)).all())
    assert all(len(set(person[r])) == 3 for r in image_rows(t))               # three different people
    classes = expression_class(aus[image_rows(t)].reshape(-1, 17)).reshape(-1, 3)
    distinct = {"ONE_CLASS_TRIPLET": 1, "TWO_CLASS_TRIPLET": 2, "THREE_CLASS_TRIPLET": 3}
    assert [distinct[x] for x in t.types] == [len(set(c)) for c in classes]


def test_noisy_annotators_mostly_agree_with_the_distances_and_ambiguous_triplets_are_dropped():
    aus, person = _faces(seed=2)
    t = make_triplets(aus, person, n=400, noise=0.25, min_agreement=4, seed=3)
    assert 0 < len(t) < 400
    assert bool(((t.labels[:, :, None] == np.arange(1, 4)).sum(1).max(1) >= 4).all())
    truth = odd_one_out(aus[image_rows(t)])
    assert float((t.odd_one_out()[0] == truth).mean()) > 0.9


def test_rendered_triplets_go_through_the_fec_reader(tmp_path, clips):
    t = make_triplets(clips.aus, np.repeat([0, 1, 2, 3], 4), n=20, noise=0.0, image_file="clips.npz")
    write_fec(t, tmp_path / "triplets.csv")
    back = read_fec(tmp_path / "triplets.csv")
    np.testing.assert_array_equal(image_rows(back), image_rows(t))
    assert back.types == t.types


def test_presence_labels():
    aus = np.zeros((3, 17))
    aus[0, 0], aus[1, 0], aus[2, 0] = 0.99, 1.0, 3.0
    labels = presence_labels(aus, ["AU01", "AU25"], threshold=1.0, yaw=np.radians([0.0, 10.0, 45.0]), max_yaw_deg=40)
    assert labels.tolist() == [[-1, -1], [1, -1], [0, 0]]
    with pytest.raises(ValueError, match="AU24"):
        presence_labels(aus, ["AU24"])


def test_f1_per_au_matches_sklearn_on_the_labelled_frames():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(-1, 2, (200, 4), generator=g)
    predicted = torch.rand(200, 4, generator=g) < 0.4
    f1 = f1_per_au(predicted, labels)
    for j in range(4):
        keep = labels[:, j] != 0
        assert float(f1[j]) == pytest.approx(100 * f1_score(labels[keep, j] > 0, predicted[keep, j]), rel=1e-9)
    assert f1_per_au(torch.zeros(3, 1, dtype=torch.bool), -torch.ones(3, 1, dtype=torch.long)).tolist() == [0.0]


def test_face_features_keep_the_frames_the_sequence_dataset_reads():
    offsets = np.array([0, 40, 47, 100])
    values = torch.arange(100, dtype=torch.float32)[:, None]
    ds = SequenceDataset(values=values, offsets=torch.from_numpy(offsets), ids=["a", "b", "c"],
                         targets=torch.zeros(3, 1), groups=torch.zeros(3), max_len=5, stride=3, crop="last")
    for s, rows in enumerate(kept_rows(offsets, max_len=5, stride=3)):
        assert rows.tolist() == ds.sequence(s)[:, 0].long().tolist()


def test_face_feature_corpus_is_a_valid_corpus_of_embeddings(tmp_path):
    frames = np.random.default_rng(0).uniform(0, 3, (30, 17)).astype(np.float32)
    offsets = np.array([0, 12, 30])
    corpus = FrameCorpus(frames=torch.from_numpy(frames), timestamps=torch.arange(30, dtype=torch.float64) / 5.0,
                         gap_before=torch.zeros(30, dtype=torch.bool), offsets=torch.from_numpy(offsets),
                         sequence_video=torch.arange(2), video_ids=["v0", "v1"],
                         meta={"au_names": [f"AU{i}" for i in range(17)], "fps": 5.0,
                               "fingerprint": FrameCorpus.compute_fingerprint(frames, offsets)})
    embed = lambda x: x.mean(dim=(2, 3))                                        # (B, 3): mean colour
    feats = face_feature_corpus(corpus, embed, size=32, max_len=4, stride=2, seed=0, log=None)
    assert feats.offsets.tolist() == [0, 4, 8] and feats.frames.shape == (8, 3)
    torch.testing.assert_close(feats.timestamps, corpus.timestamps[[4, 6, 8, 10, 22, 24, 26, 28]])
    feats.save(tmp_path / "f")
    again = FrameCorpus.load(tmp_path / "f")
    torch.testing.assert_close(again.frames, feats.frames)
    torch.testing.assert_close(face_feature_corpus(corpus, embed, size=32, max_len=4, stride=2, seed=0, log=None).frames,
                               feats.frames)                                   # deterministic


def test_networks_fit_a_tiny_rendered_set(clips):
    torch.manual_seed(0)
    labels = torch.from_numpy(presence_labels(clips.aus, CHU_AUS, threshold=1.0)).long()
    rows = np.arange(len(labels))
    x = to_images(clips.frames, rows, "cpu", size=64, crop=56)
    cnn = ChuCNN(variant="small", n_aus=len(CHU_AUS), dropout=0.0)
    opt = torch.optim.Adam(cnn.parameters(), lr=1e-3)
    first = float(multilabel_ce(cnn(x), labels))
    for _ in range(40):
        loss = multilabel_ce(cnn(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # neighbouring frames look alike but may sit either side of the threshold: nearly all, not all,
    # and well above the "every AU absent" answer
    assert float(multilabel_ce(cnn(x), labels)) < 0.5 * first
    accuracy, all_absent = float(((cnn(x) > 0) == (labels > 0)).float().mean()), float((labels < 0).float().mean())
    assert accuracy > 0.95 and accuracy > all_absent + 0.5 * (1 - all_absent)   # all absent: ~0.9 here

    img = to_images(clips.frames, rows, "cpu", size=32)
    net = GTLENet(encoder_widths=(4, 8, 8), classifier_widths=(4, 4, 8, 8, 8), n_aus=len(CHU_AUS))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(35):
        out = net(img)
        loss = gtle_loss(out["logits"], labels, out["reconstruction"], img)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():   # batch statistics, as in tests/test_au_models.py
        assert float(((net(img)["logits"] > 0) == (labels > 0)).float().mean()) > 0.95


@pytest.mark.gpu
def test_chu_and_gtle_training_run_on_cuda(clips):
    from faces.au_fit import ChuTrainConfig, GTLETrainConfig, fit_chu, fit_gtle
    from models.registry import create_model
    from training.protocols import Split
    labels = presence_labels(clips.aus, CHU_AUS, threshold=0.5)
    split = Split(train=np.array([0]), val=np.array([1]), test=np.array([1]))
    chu = create_model("chu_hybrid", n_aus=12, variant="small", pca_dim=16, lstm_hidden=8)
    out = fit_chu(chu, clips, labels, split, ChuTrainConfig(cnn_epochs=1, lstm_epochs=1, fusion_epochs=2, subseq_len=6,
                                                            skip_first=1), torch.device("cuda"), log=lambda *_: None)
    assert set(out) >= {"cnn", "lstm", "fusion"} and next(chu.parameters()).device.type == "cuda"
    net = GTLENet(encoder_widths=(4, 8, 8), classifier_widths=(4, 4, 8, 8, 8), n_aus=12)
    out = fit_gtle(net, clips, labels, split, GTLETrainConfig(epochs=1), torch.device("cuda"), size=32, log=lambda *_: None)
    assert out["gtle"].shape == (12,)
