"""The KeOps backend, forced on the CPU (KeOps compiles CPU kernels with the C++ compiler), against
the torch backend; what runs is reported honestly; the build folder is keyed by machine.
KeOps' build cache goes to a temporary folder (tests/conftest.py), never into the repository."""
import os
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from tests.planted import planted_frames
from vocab import assign as assign_module
from vocab.assign import assign, backend_report, keops_build_folder, resolve_backend
from vocab.kmeans import KMeans

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.slow  # KeOps compiles its CPU kernels on first use (a minute on a loaded 2-core box)
def test_keops_on_the_cpu_assigns_as_torch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3000, 17, generator=g) * 5
    centres = torch.rand(2, 40, 17, generator=g) * 5                  # two restarts in one batched pass
    lk, dk = assign(x, centres, backend="keops")
    lt, dt = assign(x, centres, backend="torch")
    full = ((x[None, :, None, :] - centres[:, None]) ** 2).sum(-1)      # (R, N, k) by direct differences
    assert (lk == full.argmin(-1)).float().mean() > 0.999              # ties within float rounding aside
    assert torch.equal(lk, lt) or (lk != lt).float().mean() < 1e-3
    torch.testing.assert_close(dk, full.min(-1).values, rtol=1e-4, atol=1e-4)
    one, _ = assign(x, centres[0], backend="keops")                     # the R = 1 formula
    assert torch.equal(one, lk[0])


def test_keops_fit_on_the_cpu_equals_the_torch_fit():
    frames, truth = planted_frames(n=6000, k=12, std=0.3)
    x = torch.from_numpy(frames)
    a = KMeans(k=12, seed=0, backend="keops").fit(x)
    b = KMeans(k=12, seed=0, backend="torch").fit(x)
    assert a.backend == "keops" and b.backend == "torch"               # the backend that ran, recorded
    assert adjusted_rand_score(a.labels.numpy(), b.labels.numpy()) > 0.999
    assert a.inertia == pytest.approx(b.inertia, rel=1e-5)
    assert adjusted_rand_score(truth, a.labels.numpy()) > 0.99


def test_backend_report_names_what_runs(monkeypatch):
    assert backend_report("auto", CPU) == {"asked": "auto", "ran": "torch", "fallback": None}
    assert resolve_backend("keops", CPU) == "keops"
    monkeypatch.setattr(assign_module, "keops_gpu_problem", lambda: "no toolkit here")
    with pytest.raises(ValueError, match="backend=keops on CUDA tensors, but no toolkit here"):
        resolve_backend("keops", CUDA)
    monkeypatch.setattr(assign_module, "_warned", set())
    with pytest.warns(UserWarning, match="no toolkit here"):
        report = backend_report("auto", CUDA)
    assert report == {"asked": "auto", "ran": "torch", "fallback": "no toolkit here"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                  # warned once per process
        assert resolve_backend("auto", CUDA) == "torch"
    monkeypatch.setattr(assign_module, "keops_gpu_problem", lambda: None)
    assert resolve_backend("auto", CUDA) == "keops"


def test_build_folder_is_keyed_by_host_cuda_arch_and_rank(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (9, 0))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(assign_module.socket, "gethostname", lambda: "node7")
    assert keops_build_folder("/c") == os.path.join("/c", "node7-cuda12.8-sm90-rank3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (8, 0))
    assert keops_build_folder("/c") != os.path.join("/c", "node7-cuda12.8-sm90-rank3")


@pytest.mark.gpu
def test_cuda_kmeans_clusters_as_the_cpu_does():
    """CUDA and CPU from the same seed: the same clustering up to rounding (ARI, inertia), not
    bit-equal labels, which float rounding in k-means++ sampling may move."""
    frames, _ = planted_frames(n=100_000, k=40, std=0.3, seed=2)
    x = torch.from_numpy(frames)
    gpu = KMeans(k=40, seed=0).fit(x.cuda())
    cpu = KMeans(k=40, seed=0).fit(x)
    assert gpu.backend == "keops"
    assert adjusted_rand_score(cpu.labels.numpy(), gpu.labels.cpu().numpy()) > 0.99
    assert gpu.inertia == pytest.approx(cpu.inertia, rel=1e-3)
    assert np.isfinite(gpu.mean_dist)
