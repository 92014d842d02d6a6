"""Time per Lloyd iteration with 1 and more processes (torch.distributed), and on a GPU.

    python bench/bench_distributed.py                        # CPU: 1 process, then 2 via torchrun; N = 1M, k = 1000
    python bench/bench_distributed.py --runs 1x1 1x2 2x1     # processes x threads each
    python bench/bench_distributed.py --device cuda          # + 1 GPU (and all GPUs) against the CPU rows

Each configuration runs in fresh processes (`torchrun --standalone` for more than one) on the same
AU-like frames (bench/bench_kmeans.py) and the same initial centres (k rows drawn with a seed).
Each rank holds its shard of the rows; an iteration is a local assignment and centroid sums plus
the all-reduce of sums, counts, inertia and the reassigned count. Per-iteration time:
(time of 1 + I iterations - time of 1 iteration) / I, the best of --repeat, which cancels the
set-up and the final pass. By default the cores are split between the processes, so the rows
compare the same cores used by 1 and by 2 processes. Prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_kmeans import au_like_frames  # noqa: E402
from vocab.kmeans import KMeans  # noqa: E402
from utils.artifacts import parse_json  # noqa: E402
from utils.distributed import close_distributed, init_distributed, shard  # noqa: E402


def worker(args) -> None:
    """One rank: its shard of the frames, Lloyd from fixed centres; rank 0 prints the time as JSON."""
    ctx = init_distributed(args.device)
    torch.set_num_threads(args.threads)
    frames = torch.from_numpy(au_like_frames(args.frames, seed=0))            # (N, 17): same on every rank
    g = torch.Generator().manual_seed(1)
    init = frames[torch.randperm(args.frames, generator=g)[:args.k]].clone()   # (k, 17)
    mine = shard(args.frames, ctx)
    x = frames[mine.start:mine.stop].to(ctx.device)
    del frames

    def run(iters: int) -> float:
        km = KMeans(k=args.k, max_iter=iters, tol=0.0, reassign_tol=-1.0)     # exactly `iters` iterations
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        start = time.perf_counter()
        km.fit(x, init=init, ctx=ctx)
        return time.perf_counter() - start

    run(1)                                                                      # warm-up
    t1 = min(run(1) for _ in range(args.repeat))
    tn = min(run(1 + args.iters) for _ in range(args.repeat))
    if ctx.is_main:
        print(json.dumps({"per_iter": (tn - t1) / args.iters, "procs": ctx.world_size, "device": str(ctx.device),
                          "threads": args.threads}))
    close_distributed(ctx)


def launch(args, procs: int, device: str, threads: int) -> dict:
    own = [__file__, "--worker", f"--frames={args.frames}", f"--k={args.k}", f"--iters={args.iters}",
           f"--repeat={args.repeat}", f"--device={device}", f"--threads={threads}"]
    cmd = [sys.executable, *own] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", *own]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return parse_json([line for line in out.stdout.splitlines() if line.startswith("{")][-1], "child stdout", "result")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    cores = os.cpu_count() or 1
    ap.add_argument("--runs", nargs="+", default=[f"1x{cores}", f"2x{max(1, cores // 2)}"],
                    help="CPU runs as PROCESSESxTHREADS (threads per process)")
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: also 1 GPU against the 1-process CPU figure")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    rows = []
    for run in args.runs:
        procs, threads = (int(v) for v in run.split("x"))
        r = launch(args, procs, "cpu", threads)
        rows.append([f"CPU, {procs} process{'es' if procs > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}",
                     r["per_iter"]])
    if args.device.startswith("cuda"):                      # 1 GPU, and all of them when there are several
        for gpus in sorted({1, torch.cuda.device_count()}):
            r = launch(args, gpus, "cuda", 1)
            rows.append([f"{gpus} GPU{'s' if gpus > 1 else ''} ({torch.cuda.get_device_name(0)})", r["per_iter"]])
    base = rows[0][1]
    print(f"N = {args.frames:,}, k = {args.k}, D = 17, float32; {platform.processor() or 'cpu'}, "
          f"{os.cpu_count()} cores; torch {torch.__version__}\n")
    print("| configuration | time per Lloyd iteration | speed-up vs first row |")
    print("|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t * 1e3:.0f} ms | {base / t:.2f}x |")
    print(f"\ncommand: python bench/bench_distributed.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
