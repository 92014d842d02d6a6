"""R BiLSTM replicas per training step: grouped and fused (models/bilstm.py) against the
block-diagonal model they replaced and against R plain nn.LSTM models trained one at a time.

    .venv/bin/python bench/bench_lstm.py                                   # CPU, task-B-like batches
    .venv/bin/python bench/bench_lstm.py --device cuda --replicas 50 --steps 500 --dims 25 200

One training step = forward, backward and the optimiser's update on one padded batch of token
sequences (batch 8, lengths up to --steps, GloVe-sized embedding d, hidden 32), dropout on, the
same batch for every method. Time per step: the median of --repeat timed steps after 2 warm-up
steps (CUDA synchronised), the methods interleaved step by step. "one at a time" is R separate R = 1 nn.LSTM models (the block-diagonal
class at R = 1 is exactly nn.LSTM), each stepped once: R times one plain model's step.
Memory: parameters + gradients + Adam moments (exact, from the parameter count), and on CUDA the
peak allocated by the first steps (the models of all methods are held at once: the peak includes
the others' parameters). Prints a Markdown table; --json writes the figures.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.blockdiag_reference import BlockDiagonalBiLSTM  # noqa: E402
from models.bilstm import BiLSTMRegressor  # noqa: E402
from training.loop import ReplicaAdam  # noqa: E402

V = 1003


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch(T: int, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(T // 2, T + 1, (8,), generator=g)
    lengths[0] = T
    x = torch.randint(0, V, (8, T), generator=g)
    y = torch.rand(8, generator=g)
    return x.to(device), lengths.to(device), lengths, y.to(device)


def make(method: str, R: int, d: int, device):
    vectors = torch.randn(V, d)
    if method == "blockdiag":
        m = BlockDiagonalBiLSTM(embedding_init=vectors, replicas=R, seeds=list(range(R))).to(device)
        return m, torch.optim.Adam(m.parameters(), lr=1e-3)
    if method == "one at a time":
        m = BlockDiagonalBiLSTM(embedding_init=vectors, replicas=1, seeds=[0]).to(device)
        return m, torch.optim.Adam(m.parameters(), lr=1e-3)
    m = BiLSTMRegressor(embedding_init=vectors, replicas=R, seeds=list(range(R)), lstm=method).to(device)
    return m, ReplicaAdam(m.parameters(), replicas=R, lr=1e-3)


def step(method, model, opt, x, lengths, lengths_cpu, y, R):
    pred = model(x, lengths_cpu if method in ("blockdiag", "one at a time") else lengths)  # (B, R, 1)
    loss = ((pred[..., 0] - y[:, None]) ** 2).mean(0).sum()
    if isinstance(opt, ReplicaAdam):
        opt.zero_grad()
        loss.backward()
        opt.step(torch.ones(R, dtype=torch.bool, device=x.device))
    else:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        model.mask_grads()
        opt.step()


def measure_all(methods, R, d, T, device, repeat):
    """Each method's median step time, the methods interleaved round by round, so a change of load
    on a shared machine hits them all alike."""
    data = batch(T, device)
    built = {m: make(m, R, d, device) for m in methods}
    times = {m: [] for m in methods}
    peak = {}
    for i in range(2 + repeat):
        for m in methods:
            model, opt = built[m]
            if device.type == "cuda" and i == 0:
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            t0 = time.perf_counter()
            step(m, model, opt, *data, R=R if m != "one at a time" else 1)
            sync(device)
            if i >= 2:
                times[m].append(time.perf_counter() - t0)
            if device.type == "cuda" and i == 1:
                peak[m] = torch.cuda.max_memory_allocated(device) / 2**20
    rows = []
    for m in methods:
        n_params = sum(p.numel() for p in built[m][0].parameters())
        copies = R if m == "one at a time" else 1
        rows.append({"method": m, "R": R, "d": d, "T": T, "ms_per_step": 1e3 * statistics.median(times[m]) * copies,
                     "state_mib": 4 * n_params * copies * 4 / 2**20,   # params, grads, 2 moments
                     "peak_cuda_mib": peak.get(m)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--replicas", type=int, nargs="+", default=[10])
    ap.add_argument("--dims", type=int, nargs="+", default=[25, 200])
    ap.add_argument("--steps", type=int, default=100, help="longest sequence of the batch (task B: 500)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (train.py uses 1 on the CPU)")
    ap.add_argument("--methods", nargs="+", default=["one at a time", "blockdiag", "grouped", "fused"])
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {a.threads} thread(s)"
    rows = [r for R in a.replicas for d in a.dims for r in measure_all(a.methods, R, d, a.steps, device, a.repeat)]
    print(f"device: {name}; torch {torch.__version__}; batch 8, T <= {a.steps}, V = {V}, hidden 32, "
          f"median of {a.repeat} steps\n")
    print("| R | d | method | ms per training step (all R) | vs one at a time | params+grads+Adam MiB | peak CUDA MiB |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        ref = next(x["ms_per_step"] for x in rows if x["R"] == r["R"] and x["d"] == r["d"]
                   and x["method"] == a.methods[0])
        peak = "-" if r["peak_cuda_mib"] is None else f"{r['peak_cuda_mib']:.0f}"
        print(f"| {r['R']} | {r['d']} | {r['method']} | {r['ms_per_step']:.1f} | {ref / r['ms_per_step']:.2f}x "
              f"| {r['state_mib']:.1f} | {peak} |")
    print(f"\ncommand: python bench/bench_lstm.py {' '.join(sys.argv[1:])}".rstrip())
    if a.json:
        Path(a.json).write_text(json.dumps({"device": name, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
