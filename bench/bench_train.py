"""train.py timings: the CPU demo sweep, and task B's restarts one after another vs concurrently.

    .venv/bin/python bench/bench_train.py demo --root runs/demo        # the demo sweep on the pipeline's output
    .venv/bin/python bench/bench_train.py task_b --device cuda          # paper scale, one GPU (H200)
    .venv/bin/python bench/bench_train.py task_b --interviews 60 --seconds 60 90 --restarts 4 --epochs 2  # smoke

`demo` times `train.py sweep=configs/sweep.yaml` (both tasks, every row) on an existing pipeline
output (`make demo` builds one), in a fresh sweep folder, with the sweep's own workers; it reports
the wall time and the CPU time of all processes.

`task_b` builds paper-sized task B inputs (tests/tiny_tasks.py: 275 interviews, 163/56/56, of 15 to
25 min at 5 fps, k = 1000 tokens, GloVe tables for d = 25..200) and measures, in one run:
  1. one row (LSTM + GloVe d=25) for a fixed number of epochs (no early stopping):
     reference = restarts trained one after another (parallel_restarts=1), `--ref-restarts` of them,
     scaled per restart to `--restarts`; ours = all `--restarts` as one batched model
     (parallel_restarts=0 on CUDA), and with `--chunks` replicas per model;
  2. the whole task-B sweep of configs/paper/sweep.yaml (every row, `--restarts` restarts, early
     stopping) with `--workers` processes sharing the device.
Prints Markdown rows for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.tiny_tasks import make_task  # noqa: E402
from training.artifacts import read_metrics  # noqa: E402


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def train(args: list[str]) -> tuple[float, float]:
    """Run train.py; returns (wall seconds, CPU seconds of the process and its workers)."""
    cpu0, t0 = _cpu_children(), time.time()
    done = subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, capture_output=True, text=True)
    wall, cpu = time.time() - t0, _cpu_children() - cpu0
    if done.returncode != 0:
        sys.exit(f"train.py {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, cpu


def machine(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def bench_demo(a) -> None:
    root = Path(a.root)
    if not (root / "corpus" / "task_a" / "meta.json").exists():
        sys.exit(f"{root} holds no pipeline output; run `make demo` (or pass --root)")
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = train([f"sweep={a.sweep}", f"root={root}", f"sweep_out={tmp}", "progress=false", f"device={a.device}"])
        table = (Path(tmp) / "results.md").read_text()
        runs = {f"{p.parent.parent.name}/{p.parent.name}": read_metrics(p)["seconds"]
                for p in sorted(Path(tmp).glob("*/*/metrics.json"))}
    print(table)
    print("| run | seconds (one process) |\n|---|---|")
    for name, seconds in runs.items():
        print(f"| {name} | {seconds:.0f} |")
    print()
    print("| what | machine | wall | CPU (all processes) |\n|---|---|---|---|")
    print(f"| demo sweep `{a.sweep}`: both tasks, every row | {machine(a.device)} | {wall:.0f} s | {cpu:.0f} s |")


def bench_task_b(a) -> None:
    work = Path(a.work)
    paths = {"corpus": work / "corpus", "tokens": work / "tokens", "embeddings": work / "embed",
             "labels": work / "labels.csv"}
    if not paths["labels"].exists():
        t0 = time.time()
        make_task(work, kind="task_b", subjects=a.interviews, videos_per_subject=1,
                  frames=(int(a.seconds[0] * 5), int(a.seconds[1] * 5)), k=a.k, dims=(25, 50, 100, 200))
        print(f"inputs: {a.interviews} interviews of {a.seconds[0]:.0f}-{a.seconds[1]:.0f} s at 5 fps, "
              f"k={a.k}, in {time.time() - t0:.0f} s -> {work}", flush=True)
    inputs = [f"task_b.{k}={v}" for k, v in paths.items()] + [f"device={a.device}", "progress=false"]
    fixed = [f"train.max_epochs={a.epochs}", f"train.patience={a.epochs + 1}", "task=task_b", "model=bilstm_glove",
             "bilstm_glove.d=25", "seed=0"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wall, _ = train(inputs + fixed + [f"task_b.restarts={a.ref_restarts}", "train.parallel_restarts=1", f"out={tmp}/ref"])
        ref = wall / a.ref_restarts * a.restarts
        rows.append((f"one row, {a.restarts} restarts one after another (measured {a.ref_restarts}, scaled)", ref, None))
        for chunk in [0, *a.chunks]:
            wall, _ = train(inputs + fixed + [f"task_b.restarts={a.restarts}", f"train.parallel_restarts={chunk}",
                                              f"out={tmp}/batched{chunk}"])
            label = "all in one model" if chunk == 0 else f"{chunk} per model"
            rows.append((f"one row, {a.restarts} restarts batched ({label})", wall, ref / wall))
        wall, cpu = train(inputs + [f"sweep={REPO / 'configs/paper/sweep.yaml'}", "sweep_tasks=[task_b]",
                                    f"sweep_out={tmp}/sweep", f"workers={a.workers}", f"task_b.restarts={a.restarts}",
                                    *([f"train.max_epochs={a.sweep_epochs}"] if a.sweep_epochs else [])])
        rows.append((f"task-B sweep, every row, {a.restarts} restarts, early stopping, {a.workers} workers", wall, None))
        print((Path(tmp) / "sweep" / "results.md").read_text())
    print(f"| what ({a.epochs} epochs per fit where fixed) | machine | wall | speed-up vs one after another |")
    print("|---|---|---|---|")
    for what, wall, speedup in rows:
        print(f"| {what} | {machine(a.device)} | {wall:.1f} s | {'' if speedup is None else f'{speedup:.1f}x'} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    d = sub.add_parser("demo")
    d.add_argument("--root", default="runs/demo")
    d.add_argument("--sweep", default="configs/sweep.yaml")
    d.add_argument("--device", default="auto")
    b = sub.add_parser("task_b")
    b.add_argument("--work", default="/tmp/bench_train_task_b")
    b.add_argument("--interviews", type=int, default=275)
    b.add_argument("--seconds", type=float, nargs=2, default=(900.0, 1500.0))
    b.add_argument("--k", type=int, default=1000)
    b.add_argument("--restarts", type=int, default=50)
    b.add_argument("--ref-restarts", type=int, default=5)
    b.add_argument("--chunks", type=int, nargs="*", default=[10])
    b.add_argument("--epochs", type=int, default=5)
    b.add_argument("--sweep-epochs", type=int, default=0, help="cap on the sweep's epochs (0: the preset's)")
    b.add_argument("--workers", type=int, default=4)
    b.add_argument("--device", default="auto")
    a = p.parse_args()
    (bench_demo if a.what == "demo" else bench_task_b)(a)


if __name__ == "__main__":
    main()
