"""Lloyd k-means: ours against scikit-learn and faiss, same data, same initial centres, one run.

    python bench/bench_kmeans.py                                # CPU: N = 200k and 1M, k = 1000
    python bench/bench_kmeans.py --sizes 5300000 --device cuda  # the paper's shape on a GPU
    python bench/bench_kmeans.py --paper --device cuda --sweep  # + the 7-k sweep, each k to convergence

Data (--frames): `synth` (default) is the synthetic generator with its states at the paper's
published 1000 centres (bench/synth_frames.py: the real geometry, simulated at 5 fps); when the
published folder is absent, or with `--frames prototypes`, AU-like frames (17 intensities in
[0, 5], mostly near zero) drawn around 300 sparse expression prototypes. For each size:
- per-iteration time: (time of 1 + I iterations - time of 1 iteration) / I, which cancels each
  library's set-up and final pass; the best of --repeat runs; CUDA timings are synchronised;
- final inertia: each method from the same k-means++ centres, to its own convergence rule
  (ours: config defaults; scikit-learn: tol=1e-4; faiss: a fixed --faiss-iters, it has no rule),
  all evaluated by one float64 function on the returned centres;
- peak memory: each run to convergence happens in a fresh process that loads the frames and the
  initial centres, then resets the kernel's peak-RSS count; the peak resident set of the run less
  the resident set before it (so the frames themselves are not counted), and
  torch.cuda.max_memory_allocated on CUDA.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils.seeds import seed_for  # noqa: E402
from vocab.assign import assign, exact_sq_dist  # noqa: E402
from vocab.kmeans import KMeans  # noqa: E402

PAPER_N, PAPER_K, D = 5_292_819, 1000, 17
PAPER_SWEEP = [100, 200, 500, 1000, 2000, 5000, 10000]


def au_like_frames(n: int, *, seed: int = 0, n_protos: int = 300) -> np.ndarray:
    """(n, 17) float32: sparse prototypes (2-4 active AUs) plus noise, clipped to [0, 5]."""
    rng = np.random.default_rng(seed)
    protos = np.zeros((n_protos, D))
    for p in protos:
        active = rng.choice(D, rng.integers(2, 5), replace=False)
        p[active] = rng.uniform(0.5, 4.0, len(active))
    out = np.empty((n, D), dtype=np.float32)
    for s in range(0, n, 1 << 20):
        m = min(n, s + (1 << 20)) - s
        which = rng.integers(n_protos, size=m)
        out[s:s + m] = np.clip(protos[which] * rng.uniform(0.5, 1.2, (m, 1)) + rng.normal(0, 0.35, (m, D)), 0, 5)
    return out


def bench_frames(n: int, args) -> np.ndarray:
    """(n, 17) float32 frames of the chosen source (see the module docstring), saying which."""
    if args.frames == "synth":
        from synth_frames import generator_frames
        got = generator_frames(n, seed=args.seed, workers=os.cpu_count() or 1)
        if got is not None:
            print(f"[frames] N = {n}: the generator at the published vocabulary (bench/synth_frames.py)")
            return got[0]
        print("[frames] no published vocabulary here: sparse prototypes instead")
    return au_like_frames(n, seed=args.seed)


def proc_status_mib(key: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident since the last reset_peak_rss) of this process."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024


def reset_peak_rss() -> float:
    """Restart the peak-RSS count (Linux >= 4.0) and return the resident set now."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return proc_status_mib("VmRSS")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device=torch.device("cpu")):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def inertia_of(x: torch.Tensor, centroids: np.ndarray | torch.Tensor) -> float:
    c = torch.as_tensor(centroids, dtype=x.dtype, device=x.device)
    labels, _ = assign(x, c)
    return float(exact_sq_dist(x.double(), c.double(), labels).sum())


# -------------------------------------------------------------------------------- the methods
def per_iteration(run, iters, repeat, device=torch.device("cpu")):
    """(best time of 1 + iters iterations - best time of 1) / iters: set-up and final passes cancel."""
    t1 = min(timed(lambda: run(1), device)[0] for _ in range(repeat))
    tn = min(timed(lambda: run(1 + iters), device)[0] for _ in range(repeat))
    return (tn - t1) / iters


def ours_iterations(x, init, iters, backend, repeat):
    run = lambda m: KMeans(k=init.shape[0], max_iter=m, tol=0, reassign_tol=0, backend=backend).fit(x, init=init)
    run(1)  # warm-up: KeOps compilation, CUDA context, caches
    return per_iteration(run, iters, repeat, x.device)


def sklearn_iterations(xn, initn, iters, repeat):
    from sklearn.cluster import KMeans as SkKMeans
    run = lambda m: SkKMeans(len(initn), init=initn, n_init=1, max_iter=m, tol=0, algorithm="lloyd").fit(xn)
    return per_iteration(run, iters, repeat)


def faiss_kmeans(xn, initn, niter):
    import faiss
    km = faiss.Kmeans(xn.shape[1], len(initn), niter=niter, spherical=False, seed=0, verbose=False,
                      max_points_per_centroid=len(xn) + 1)  # never subsample
    km.train(xn, init_centroids=initn)
    return km


def faiss_iterations(xn, initn, iters, repeat):
    return per_iteration(lambda m: faiss_kmeans(xn, initn, m), iters, repeat)


def converge(method, x, init, args):
    """Run `method` from init to its own stopping rule: (centroids, iterations)."""
    k, xn, initn = init.shape[0], x.cpu().numpy(), init.cpu().numpy()
    if method.startswith("ours"):
        res = KMeans(k=k, max_iter=args.max_iter, backend=method.split(":")[1]).fit(x, init=init)
        return res.centroids.cpu().numpy(), res.n_iter
    if method == "sklearn":
        from sklearn.cluster import KMeans as SkKMeans
        km = SkKMeans(k, init=initn, n_init=1, max_iter=args.max_iter, tol=1e-4, algorithm="lloyd").fit(xn)
        return km.cluster_centers_, km.n_iter_
    return faiss_kmeans(xn, initn, args.faiss_iters).centroids, args.faiss_iters


def child(args):
    """One run to convergence in a fresh process, so its peak memory is its own."""
    data = Path(args.child_data)
    device = torch.device(args.device)
    x = torch.from_numpy(np.load(data / "x.npy")).to(device)
    init = torch.from_numpy(np.load(data / "init.npy")).to(device)
    # a short warm-up first: imports, thread pools and BLAS buffers are not the method's working memory
    rows = min(len(x), max(2000, 4 * len(init)))
    converge(args.child, x[:rows], init, argparse.Namespace(max_iter=2, faiss_iters=2))
    base = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, (centroids, n_iter) = timed(lambda: converge(args.child, x, init, args), device)
    np.save(data / "centroids.npy", centroids)
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    print(json.dumps({"seconds": seconds, "n_iter": int(n_iter), "rss_mib": proc_status_mib("VmHWM") - base, "gpu_mib": gpu}))


def converge_in_child(method, data: Path, args, device) -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--child-data", str(data), "--device", str(device),
           "--max-iter", str(args.max_iter), "--faiss-iters", str(args.faiss_iters)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{method} failed:\n{done.stderr}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    res["centroids"] = np.load(data / "centroids.npy")
    return res


# -------------------------------------------------------------------------------- driver
def bench_size(n, k, args, device):
    xn = bench_frames(n, args)
    x = torch.from_numpy(xn).to(device)
    init = KMeans(k=k, seed=args.seed).init_centres(x)[0]       # (k, D) k-means++ on <= 200k frames
    initn = init.cpu().numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", xn)
        np.save(Path(tmp) / "init.npy", initn)
        for backend in args.backends:
            per_iter = ours_iterations(x, init, args.iters, backend, args.repeat)
            conv = converge_in_child(f"ours:{backend}", Path(tmp), args, device)
            rows.append(dict(method=f"ours ({backend}, {device.type})", per_iter=per_iter, **conv))
        if not args.no_reference:
            per_iter = sklearn_iterations(xn, initn, args.iters, args.repeat)
            conv = converge_in_child("sklearn", Path(tmp), args, "cpu")
            rows.append(dict(method="scikit-learn lloyd (cpu)", per_iter=per_iter, **conv))
            per_iter = faiss_iterations(xn, initn, args.iters, args.repeat)
            conv = converge_in_child("faiss", Path(tmp), args, "cpu")
            rows.append(dict(method="faiss Kmeans (cpu)", per_iter=per_iter, **conv))
    for row in rows:
        row["inertia"] = inertia_of(x, row.pop("centroids"))
    ref = next((r["inertia"] for r in rows if r["method"].startswith("scikit")), None)
    print(f"\nN = {n}, k = {k}, D = {D}, float32; {args.iters} timed iterations, best of {args.repeat}; "
          f"torch threads {torch.get_num_threads()}")
    print("| method | ms / iteration | iterations to stop | seconds to stop | final inertia | vs scikit-learn "
          "| peak RSS MiB above data | peak CUDA MiB |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        rel = f"{100 * (r['inertia'] / ref - 1):+.3f} %" if ref else "-"
        gpu = f"{r['gpu_mib']:.0f}" if r["gpu_mib"] is not None else "-"
        print(f"| {r['method']} | {1000 * r['per_iter']:.1f} | {r['n_iter']} | {r['seconds']:.1f} | {r['inertia']:.6g} "
              f"| {rel} | {r['rss_mib']:.0f} | {gpu} |")
    return dict(n=n, k=k, rows=rows)


def bench_restarts(n, k, args, device):
    """n_init restarts in one batched reduction against one after another, fixed iterations."""
    x = torch.from_numpy(bench_frames(n, args)).to(device)
    out = {}
    for batched in (True, False):
        km = KMeans(k=k, n_init=args.n_init, max_iter=args.iters, tol=0, reassign_tol=0, batch_restarts=batched,
                    backend=args.backends[0])
        init = km.init_centres(x)
        km.fit(x, init=init)  # warm-up
        out[batched], _ = timed(lambda: km.fit(x, init=init), device)
    print(f"\nn_init={args.n_init} at N = {n}, k = {k}, {args.iters} iterations each: batched {out[True]:.2f} s, "
          f"one after another {out[False]:.2f} s")
    return {"batched_s": out[True], "serial_s": out[False]}


def bench_sweep(n, ks, args, device):
    """The elbow sweep as cluster.py runs it: k-means++ and Lloyd to convergence for every k."""
    x = torch.from_numpy(bench_frames(n, args)).to(device)
    KMeans(k=ks[0], max_iter=2).fit(x)  # warm-up
    total, rows = 0.0, []
    print(f"\nsweep at N = {n} on {device}:")
    print("| k | iterations | stop | seconds | mean distance |\n|---|---|---|---|---|")
    for k in ks:
        t, res = timed(lambda: KMeans(k=k, seed=seed_for(args.seed, k), backend=args.backends[0]).fit(x), device)
        total += t
        rows.append(dict(k=k, n_iter=res.n_iter, stop=res.stop, seconds=t, mean_dist=res.mean_dist))
        print(f"| {k} | {res.n_iter} | {res.stop} | {t:.1f} | {res.mean_dist:.4f} |")
    print(f"whole sweep: {total:.1f} s")
    return {"total_s": total, "rows": rows}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[200_000, 1_000_000])
    p.add_argument("--paper", action="store_true", help=f"add the paper's size, N = {PAPER_N}")
    p.add_argument("--k", type=int, default=PAPER_K)
    p.add_argument("--iters", type=int, default=5, help="iterations timed per method")
    p.add_argument("--repeat", type=int, default=2, help="timings repeated, the best kept")
    p.add_argument("--max-iter", type=int, default=300, help="cap for the run to convergence")
    p.add_argument("--faiss-iters", type=int, default=100, help="faiss has no stopping rule: iterations it runs")
    p.add_argument("--device", default="auto")
    p.add_argument("--backends", type=lambda s: s.split(","), default=None, help="default: the device's auto choice")
    p.add_argument("--no-reference", action="store_true", help="skip scikit-learn and faiss")
    p.add_argument("--n-init", type=int, default=0, help="also time batched against serial restarts")
    p.add_argument("--sweep", action="store_true", help=f"also time the sweep {PAPER_SWEEP} at the largest size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", choices=["synth", "prototypes"], default="synth",
                   help="synth: the generator at the published vocabulary (fallback: prototypes)")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    args.backends = args.backends or ["keops" if device.type == "cuda" else "torch"]
    sizes = args.sizes + ([PAPER_N] if args.paper else [])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"device: {name}; torch {torch.__version__}")
    results = {"device": name, "sizes": [bench_size(n, args.k, args, device) for n in sizes]}
    if args.n_init > 1:
        results["restarts"] = bench_restarts(sizes[-1], args.k, args, device)
    if args.sweep:
        results["sweep"] = bench_sweep(sizes[-1], PAPER_SWEEP, args, device)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
