"""k-means against scikit-learn's Lloyd (same data, same initial centres) and planted clusters."""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from vocab.elbow import knee
from vocab.assign import assign
from vocab.kmeans import KMeans, kmeans_plusplus
from tests.planted import planted_frames

BACKENDS = ["torch", pytest.param("keops", marks=pytest.mark.slow)]  # KeOps compiles on first use (~5 s a formula)


def overlapping_blobs(n=4000, k=15, dim=5, seed=0):
    """Overlapping clusters, so Lloyd takes tens of iterations and labels move between them."""
    x, _ = make_blobs(n, n_features=dim, centers=k, cluster_std=2.0, random_state=seed)
    init = x[np.random.default_rng(seed).choice(n, k, replace=False)].copy()
    return x, init  # float64


def sklearn_lloyd(x, init, max_iter):
    return SkKMeans(len(init), init=init, n_init=1, max_iter=max_iter, tol=0, algorithm="lloyd").fit(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("max_iter", [1, 3, 300])
def test_lloyd_matches_sklearn_float64(backend, max_iter):
    x, init = overlapping_blobs()
    ref = sklearn_lloyd(x, init, max_iter)
    ours = KMeans(k=len(init), max_iter=max_iter, tol=0, reassign_tol=0, backend=backend).fit(
        torch.from_numpy(x), init=torch.from_numpy(init))
    assert ours.n_iter == ref.n_iter_
    assert np.array_equal(ours.labels.numpy(), ref.labels_)
    np.testing.assert_allclose(ours.centroids.numpy(), ref.cluster_centers_, rtol=0, atol=1e-4)
    assert ours.inertia == pytest.approx(ref.inertia_, rel=1e-9)
    if max_iter == 300:
        assert ours.stop == "converged" and ours.n_iter > 10


def test_lloyd_matches_sklearn_float32_well_separated():
    frames, _ = planted_frames(n=20000, k=40, std=0.3)
    init = frames[np.random.default_rng(1).choice(len(frames), 40, replace=False)]
    ref = sklearn_lloyd(frames, init, 300)
    ours = KMeans(k=40, max_iter=300, tol=0, reassign_tol=0).fit(torch.from_numpy(frames), init=torch.from_numpy(init))
    assert ours.n_iter == ref.n_iter_
    assert np.array_equal(ours.labels.numpy(), ref.labels_)
    np.testing.assert_allclose(ours.centroids.numpy(), ref.cluster_centers_, rtol=0, atol=1e-4)


def test_empty_cluster_reseeded_like_sklearn():
    x, init = overlapping_blobs(n=3000, k=8, dim=4, seed=1)
    init[3] = 1000.0  # no frame is nearest to it: empty after the first assignment
    for max_iter in (1, 300):
        ref = sklearn_lloyd(x, init, max_iter)
        ours = KMeans(k=8, max_iter=max_iter, tol=0, reassign_tol=0).fit(torch.from_numpy(x),
                                                                         init=torch.from_numpy(init))
        assert ours.history[0]["relocated"] == 1
        assert np.array_equal(ours.labels.numpy(), ref.labels_)
        np.testing.assert_allclose(ours.centroids.numpy(), ref.cluster_centers_, rtol=0, atol=1e-4)


def test_duplicate_initial_centres_leave_no_empty_cluster():
    frames, _ = planted_frames(n=3000, k=6)
    init = torch.from_numpy(frames[:6]).clone()
    init[1] = init[0]
    init[2] = init[0]  # three identical centres: ties go to one, two start empty
    res = KMeans(k=6, max_iter=50).fit(torch.from_numpy(frames), init=init)
    assert res.history[0]["relocated"] == 2
    assert int(res.counts.min()) > 0 and int(res.counts.sum()) == 3000


@pytest.mark.parametrize("n_init", [1, 3])
def test_planted_clusters_recovered(n_init):
    frames, truth = planted_frames(n=30000, k=25, std=0.2, seed=3)
    res = KMeans(k=25, n_init=n_init, seed=0).fit(torch.from_numpy(frames))
    assert adjusted_rand_score(truth, res.labels.numpy()) >= 0.99
    assert len(res.restart_inertias) == n_init


def test_best_restart_is_kept_against_sklearn():
    """Three restarts from given starts: each restart's inertia is scikit-learn's Lloyd from that
    start, and the result is the centres of the restart sklearn finds lowest, with the inertia
    recomputed here from those centres."""
    x, _ = overlapping_blobs(n=3000, k=8, dim=4, seed=2)
    rng = np.random.default_rng(7)
    inits = np.stack([x[rng.choice(len(x), 8, replace=False)] for _ in range(3)])   # (3, k, D)
    refs = [sklearn_lloyd(x, init, 300) for init in inits]
    low, mid, high = np.argsort([r.inertia_ for r in refs])
    inits, refs = inits[[mid, low, high]], [refs[i] for i in (mid, low, high)]  # the best neither first nor last
    ref_inertia = [r.inertia_ for r in refs]
    assert ref_inertia[1] < ref_inertia[0] < ref_inertia[2]
    best = 1
    res = KMeans(k=8, max_iter=300, tol=0, reassign_tol=0).fit(torch.from_numpy(x), init=torch.from_numpy(inits))
    assert res.restart == best
    np.testing.assert_allclose(res.restart_inertias, ref_inertia, rtol=1e-9)
    np.testing.assert_allclose(res.centroids.numpy(), refs[best].cluster_centers_, rtol=0, atol=1e-6)
    d2 = ((x[:, None, :] - res.centroids.numpy()[None]) ** 2).sum(-1).min(1)
    assert res.inertia == pytest.approx(d2.sum(), rel=1e-9)
    assert res.mean_dist == pytest.approx(np.sqrt(d2).mean(), rel=1e-9)


def test_seeded_and_repeatable():
    frames = torch.from_numpy(overlapping_blobs(n=4000, k=10)[0]).float()
    a = KMeans(k=10, seed=5, n_init=2).fit(frames)
    b = KMeans(k=10, seed=5, n_init=2).fit(frames)
    c = KMeans(k=10, seed=6, n_init=2).fit(frames)
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.labels, b.labels)
    assert not torch.equal(KMeans(k=10, seed=5).init_centres(frames), KMeans(k=10, seed=6).init_centres(frames))
    assert c.restart_inertias != a.restart_inertias


def test_batched_restarts_equal_one_after_another():
    frames = torch.from_numpy(overlapping_blobs(n=4000, k=10)[0]).float()
    batched = KMeans(k=10, seed=2, n_init=3, batch_restarts=True).fit(frames)
    serial = KMeans(k=10, seed=2, n_init=3, batch_restarts=False).fit(frames)
    assert batched.restart_inertias == serial.restart_inertias and len(set(batched.restart_inertias)) == 3
    assert torch.equal(batched.centroids, serial.centroids)


def test_kmeans_plusplus_picks_data_rows_and_each_once():
    x = torch.randn(50, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    centres = kmeans_plusplus(x, 50, n_restarts=2, generator=g)  # k = N: every row, once
    for r in range(2):
        rows = torch.cdist(centres[r], x).argmin(1)
        assert sorted(rows.tolist()) == list(range(50))
    frames, truth = planted_frames(n=4000, k=12, std=0.1)
    centres = kmeans_plusplus(torch.from_numpy(frames), 12, generator=torch.Generator().manual_seed(1))[0]
    hit = truth[torch.cdist(centres, torch.from_numpy(frames)).argmin(1).numpy()]
    assert len(set(hit.tolist())) == 12  # one centre in every planted cluster


def test_init_sample_draws_from_a_subset():
    frames = torch.from_numpy(planted_frames(n=5000, k=8)[0])
    km = KMeans(k=8, seed=0, init_sample=500)
    centres = km.init_centres(frames)[0]
    assert torch.equal(centres, km.init_centres(frames)[0])
    assert (centres[:, None, :] == frames[None]).all(-1).any(1).all()  # each centre is a row of the data


@pytest.mark.parametrize("backend", BACKENDS)
def test_assign_exact_in_chunks_and_batched(backend):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1001, 17, generator=g, dtype=torch.float64) * 5
    centres = torch.rand(3, 37, 17, generator=g, dtype=torch.float64) * 5
    labels, d2 = assign(x, centres, backend=backend, chunk=100)        # (3, 1001) each
    for r in range(3):
        full = torch.cdist(x, centres[r]) ** 2
        assert torch.equal(labels[r], full.argmin(1))
        torch.testing.assert_close(d2[r], full.min(1).values, rtol=1e-9, atol=1e-9)
        one, _ = assign(x, centres[r], backend=backend, chunk=64)
        assert torch.equal(one, labels[r])


@pytest.mark.slow
def test_keops_and_torch_agree_float32():
    frames, _ = planted_frames(n=20000, k=30, std=0.3)
    x = torch.from_numpy(frames)
    a = KMeans(k=30, seed=0, backend="keops").fit(x)
    b = KMeans(k=30, seed=0, backend="torch").fit(x)
    assert torch.equal(a.labels, b.labels)
    torch.testing.assert_close(a.centroids, b.centroids, rtol=0, atol=1e-5)


def test_stopping_rules():
    x = torch.from_numpy(overlapping_blobs(n=4000, k=15)[0]).float()
    full = KMeans(k=15, seed=0, tol=0, reassign_tol=0).fit(x)
    assert full.stop == "converged"
    by_reassign = KMeans(k=15, seed=0, tol=0, reassign_tol=0.05).fit(x)
    assert by_reassign.stop == "reassigned" and by_reassign.n_iter < full.n_iter
    assert by_reassign.history[-1]["reassigned"] <= 0.05 < by_reassign.history[-2]["reassigned"]
    by_inertia = KMeans(k=15, seed=0, tol=1e-2, reassign_tol=0).fit(x)
    assert by_inertia.stop == "inertia" and by_inertia.n_iter < full.n_iter
    assert KMeans(k=15, seed=0, max_iter=2, tol=0, reassign_tol=0).fit(x).stop == "max_iter"
    inertias = [h["inertia"] for h in full.history]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(inertias, inertias[1:]))  # Lloyd never goes up


def test_bad_input_is_named():
    x = torch.rand(10, 17)
    with pytest.raises(ValueError, match="k=11 clusters asked for, but there are 10 frames"):
        KMeans(k=11).fit(x)
    x[4, 2] = float("nan")
    with pytest.raises(ValueError, match="row 4, column 2"):
        KMeans(k=2).fit(x)
    with pytest.raises(ValueError, match="2-D float"):
        KMeans(k=2).fit(torch.rand(10))


def test_knee_of_elbow_curve():
    ks = [10, 20, 50, 100, 200, 500]
    assert knee(ks, [5.0, 3.0, 1.0, 0.9, 0.85, 0.8]) == 50
    assert knee(list(reversed(ks)), [0.8, 0.85, 0.9, 1.0, 3.0, 5.0]) == 50  # order of the sweep does not matter
    assert knee([10, 20], [2.0, 1.0]) == 20            # fewer than three points: the largest k
    assert knee(ks, [5.0, 4.99, 4.9, 4.5, 3.0, 0.1]) == 500  # concave: no elbow, the largest k


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["keops", "torch"])
def test_cuda_lloyd_matches_sklearn(backend):
    x, init = overlapping_blobs()
    ref = sklearn_lloyd(x, init, 300)
    ours = KMeans(k=len(init), tol=0, reassign_tol=0, backend=backend).fit(
        torch.from_numpy(x).cuda(), init=torch.from_numpy(init).cuda())
    assert ours.n_iter == ref.n_iter_
    assert np.array_equal(ours.labels.cpu().numpy(), ref.labels_)
    np.testing.assert_allclose(ours.centroids.cpu().numpy(), ref.cluster_centers_, rtol=0, atol=1e-4)


@pytest.mark.gpu
def test_cuda_batched_restarts_recover_planted_clusters():
    frames, truth = planted_frames(n=200_000, k=50, std=0.2, seed=4)
    x = torch.from_numpy(frames).cuda()
    res = KMeans(k=50, n_init=3, seed=0).fit(x)                # keops, three restarts in one reduction
    assert adjusted_rand_score(truth, res.labels.cpu().numpy()) >= 0.99
    cpu = KMeans(k=50, n_init=3, seed=0).fit(x.cpu())          # same seed: same k-means++ draws
    assert torch.equal(res.labels.cpu(), cpu.labels)
