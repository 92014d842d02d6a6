"""The prepared GPU check (issue 11): every GPU figure BENCHMARKS.md owes, in one run of under 8 minutes.

    python3 bench/gpu_check.py OUT                 # on one H200 (make gpu-check GPU_OUT=OUT)
    python3 bench/gpu_check.py OUT --cpu-tiny      # tiny sizes on the CPU: what `make test` runs

Writes OUT/gpu_check.json (every figure, each part's status and time) and OUT/gpu_check.md (one
Markdown table against the issue's targets). Parts, in this order, each in its own process with
its own time limit (and all of them inside --budget), so one slow part cannot eat the others' time;
a part that runs out of time still reports what it finished:
  pytest_gpu     `pytest -m gpu`
  kmeans         N = 5.3M, D = 17, k = 1000: ms per Lloyd iteration, KeOps and torch backends, peak GPU memory
  cooccurrence   5.3M tokens, V = 1003, window 10
  glove          d = 200 to the optimum (glove `converge=true` when the trainer has it, else 1000 epochs)
  distributed    bench/bench_distributed.py's single-GPU row, with its 1-process CPU reference
  lstm           bench/bench_lstm.py at task B's shape (50 replicas, T = 500, d = 200): grouped, fused,
                 block-diagonal and one nn.LSTM at a time, ms per training step
  task_b         one row of the task-B sweep (LSTM + GloVe d=200, 50 restarts, early stopping), paper-sized inputs
  faces          the face stage's networks at the papers' sizes (bench/bench_au_nets.py --paper: training
                 images/s of Chu et al., GTLE-Net, Fung & McDuff) and faces.py end to end at a tiny size
                 on the device (rendering on the CPU, every fit on CUDA); --cpu-tiny: the bench at demo sizes
  kmeans_sweep   the paper's 7-k sweep at N = 5.3M, each k to convergence

The GPU machine has no package registry: KeOps and OmegaConf are installed first from wheels
carried in .whl/ when they do not import (see the Makefile's `gpu-wheels`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SITE = Path(tempfile.gettempdir()) / "facevocab-site"     # where carried wheels are installed
WORK = Path(tempfile.gettempdir()) / "facevocab-gpu-check"  # inputs and run dirs (never brought back)

# part -> (time limit in s on the GPU, target as text)
PARTS = {
    "pytest_gpu": (75, "all pass"),
    "kmeans": (70, "<= 15 ms per Lloyd iteration (KeOps)"),
    "cooccurrence": (25, "< 1 s"),
    "glove": (40, "1000 epochs at d=200 < 10 s"),
    "distributed": (35, "-"),
    "lstm": (40, "the fastest becomes AUTO_LSTM['cuda']"),
    "task_b": (100, "task-B sweep < 10 min (6 LSTM rows)"),
    "faces": (50, "runs; images/s recorded"),
    "kmeans_sweep": (80, "< 3 min"),
}
TINY_LIMIT = 120   # per part in --cpu-tiny mode (a loaded 2-core CI box)
PACKAGES = {"pykeops": "pykeops", "keopscore": "keopscore", "omegaconf": "omegaconf"}


# ------------------------------------------------------------------------------------ set-up
def ensure_packages() -> list[str]:
    """Install the missing packages from the wheels in .whl/ into SITE; returns what was installed."""
    import importlib.util
    missing = [name for name, module in PACKAGES.items() if importlib.util.find_spec(module) is None]
    if not missing:
        return []
    wheels = sorted(str(p) for p in (REPO / ".whl").glob("*.whl"))
    if not wheels:
        raise SystemExit(f"{', '.join(missing)} missing and no wheels in {REPO / '.whl'}: run `make gpu-wheels` "
                         "where pip reaches PyPI, and carry .whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(SITE), *wheels], check=True)
    sys.path.insert(0, str(SITE))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return missing


def sizes(tiny: bool) -> dict:
    if tiny:
        return dict(N=20_000, k=50, iters=2, sweep=[5, 10, 20], tokens=50_000, dim=8, glove_epochs=20,
                    frames=2000, interviews=16, seconds=(8.0, 16.0), tb_k=16, restarts=3, epochs=2,
                    backends=["torch"], lstm=dict(R=2, d=8, T=10))
    from bench.bench_kmeans import PAPER_N, PAPER_SWEEP
    return dict(N=PAPER_N, k=1000, iters=5, sweep=PAPER_SWEEP, tokens=5_300_000, dim=200, glove_epochs=1000,
                frames=1_000_000, interviews=275, seconds=(900.0, 1500.0), tb_k=1000, restarts=50, epochs=100,
                backends=["keops", "torch"], lstm=dict(R=50, d=200, T=500))


class Partial:
    """A part's result file, rewritten after every figure, so a part stopped at its limit still reports."""

    def __init__(self, path: Path):
        self.path, self.data = path, {}

    def __setitem__(self, key, value):
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=1, default=str))


# ------------------------------------------------------------------------------------ the parts
def part_pytest_gpu(res: Partial, s: dict, device, tiny: bool) -> None:
    if tiny:
        res["skipped"] = "cpu-tiny: `make test` runs the suite itself"
        return
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-rfE"],
                          cwd=REPO, capture_output=True, text=True)
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", done.stdout.splitlines()[-1]
                                                if done.stdout.strip() else "")}
    res["counts"] = counts
    res["rc"] = done.returncode
    res["tail"] = (done.stdout + done.stderr)[-4000:]
    res["ok"] = done.returncode == 0


def part_kmeans(res: Partial, s: dict, device, tiny: bool) -> None:
    import torch
    from bench.bench_kmeans import au_like_frames, ours_iterations
    from vocab.assign import backend_report
    from vocab.kmeans import KMeans
    x = torch.from_numpy(au_like_frames(s["N"], seed=0)).to(device)
    init = KMeans(k=s["k"], seed=0).init_centres(x)[0]
    res["N"], res["k"], res["D"] = s["N"], s["k"], x.shape[1]
    for backend in s["backends"]:
        try:
            res[f"{backend}_report"] = backend_report(backend, device)
        except ValueError as e:                                        # keops without a CUDA toolkit
            res[backend] = {"error": str(e)}
            continue
        ms = 1e3 * ours_iterations(x, init, s["iters"], backend, repeat=2)
        peak = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            KMeans(k=s["k"], max_iter=3, tol=0, reassign_tol=0, backend=backend).fit(x, init=init)
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        res[backend] = {"ms_per_iteration": ms, "peak_gpu_mib": peak}


def part_kmeans_sweep(res: Partial, s: dict, device, tiny: bool) -> None:
    import torch
    from bench.bench_kmeans import au_like_frames, timed
    from utils.seeds import seed_for
    from vocab.kmeans import KMeans
    x = torch.from_numpy(au_like_frames(s["N"], seed=0)).to(device)
    KMeans(k=s["sweep"][0], max_iter=2).fit(x)                       # warm-up (KeOps compiles)
    rows, total = [], 0.0
    for k in s["sweep"]:
        t, r = timed(lambda: KMeans(k=k, seed=seed_for(0, k)).fit(x), device)
        total += t
        rows.append({"k": k, "seconds": t, "n_iter": r.n_iter, "stop": r.stop, "mean_dist": r.mean_dist,
                     "backend": r.backend})
        res["rows"] = rows
        res["total_s"] = total
    res["complete"] = True


def part_cooccurrence(res: Partial, s: dict, device, tiny: bool) -> None:
    from bench.bench_embed import best_of, make_tokens
    from glove.cooccurrence import cooccurrence
    tokens, offsets = make_tokens(s["tokens"], 1003, 35.0, seed=0)
    t, o = tokens.to(device), offsets.to(device)
    run = lambda: cooccurrence(t, o, vocab_size=1003, window=10)
    X = run()                                                         # warm-up
    res["tokens"] = int(tokens.numel())
    res["nonzeros"] = int(X._nnz())
    res["seconds"] = best_of(3, run, device)


def part_glove(res: Partial, s: dict, device, tiny: bool) -> None:
    import torch
    from bench.bench_embed import make_tokens, sync
    from glove.cooccurrence import cooccurrence
    from glove.trainer import GloveConfig, GloveTrainer
    tokens, offsets = make_tokens(s["tokens"], 1003, 35.0, seed=0)
    X = cooccurrence(tokens.to(device), offsets.to(device), vocab_size=1003, window=10)
    names = {f.name for f in dataclasses.fields(GloveConfig)}
    if "converge" in names:   # the GloVe solver of issue 10: run to the optimum
        cfg, how = GloveConfig(converge=True), "converge=true"
    else:                     # the trainer as it is: its default epochs (1000), as the released code
        cfg, how = GloveConfig(epochs=s["glove_epochs"]), f"{s['glove_epochs']} epochs (no `converge` option yet)"
    res["how"], res["dim"] = how, s["dim"]
    trainer = GloveTrainer(X, dim=s["dim"], cfg=cfg, device=device)
    sync(device)
    t0 = time.perf_counter()
    out = trainer.fit(log=None)
    sync(device)
    res["seconds"] = time.perf_counter() - t0
    res["epochs"], res["final_loss"], res["converged"] = out.epochs, out.losses[-1], out.converged
    res["finite"] = bool(torch.isfinite(out.model.vectors()).all())


def part_distributed(res: Partial, s: dict, device, tiny: bool) -> None:
    import torch
    from bench.bench_distributed import launch
    args = argparse.Namespace(frames=s["frames"], k=s["k"], iters=s["iters"], repeat=2)
    cores = 1 if tiny else os.cpu_count() or 1
    res["cpu_1_process_ms"] = 1e3 * launch(args, 1, "cpu", cores)["per_iter"]
    res["cpu_threads"] = cores
    res["frames"], res["k"] = s["frames"], s["k"]
    if device.type == "cuda":
        res["gpu_1_ms"] = 1e3 * launch(args, 1, "cuda", 1)["per_iter"]
        res["gpu"] = torch.cuda.get_device_name(device)


def part_lstm(res: Partial, s: dict, device, tiny: bool) -> None:
    from bench.bench_lstm import measure_all
    c = s["lstm"]
    rows = measure_all(["one at a time", "grouped", "fused", "blockdiag"], c["R"], c["d"], c["T"], device, repeat=3)
    res["rows"] = rows
    fastest = min(("grouped", "fused"), key=lambda m: next(r["ms_per_step"] for r in rows if r["method"] == m))
    res["fastest_replicated"] = fastest


def part_task_b(res: Partial, s: dict, device, tiny: bool) -> None:
    from tests.tiny_tasks import make_task
    import train
    work = WORK / ("task_b_tiny" if tiny else "task_b")
    t0 = time.time()
    if not (work / "labels.csv").exists():
        make_task(work, kind="task_b", subjects=s["interviews"], videos_per_subject=1,
                  frames=(int(s["seconds"][0] * 5), int(s["seconds"][1] * 5)), k=s["tb_k"], dims=(s["dim"],))
    res["inputs_s"] = time.time() - t0
    out = work / f"run_{time.strftime('%H%M%S')}"
    res["run_dir"] = str(out)                                        # the parent reads its log on a timeout
    argv = [f"task_b.{key}={work / name}" for key, name in
            (("corpus", "corpus"), ("tokens", "tokens"), ("embeddings", "embed"), ("labels", "labels.csv"))]
    argv += ["task=task_b", "model=bilstm_glove", f"bilstm_glove.d={s['dim']}", f"task_b.restarts={s['restarts']}",
             f"train.max_epochs={s['epochs']}", "train.patience=10", "task_b.max_len=500", "task_b.stride=6",
             f"device={device.type}", "progress=false", f"out={out}"]
    t0 = time.time()
    rc = train.main(argv)
    res["seconds"] = time.time() - t0
    res["rc"] = rc
    metrics = json.loads((out / "metrics.json").read_text())
    res["test"] = metrics["mean_over_targets"]
    res["tf32"] = metrics.get("tf32")
    res.data.update(epoch_log(out))
    res["complete"] = True


def epoch_log(run_dir: Path) -> dict:
    """Epochs logged by a (possibly unfinished) train.py run and its seconds per epoch."""
    log = Path(run_dir) / "train_log.jsonl"
    if not log.exists():
        return {}
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not lines:
        return {}
    return {"epochs_logged": len(lines), "s_per_epoch": lines[-1]["time_s"] / len(lines)}


def part_faces(res: Partial, s: dict, device, tiny: bool) -> None:
    bench = [sys.executable, str(REPO / "bench" / "bench_au_nets.py"), "--device", device.type]
    bench += ["--steps", "1", "--reference-width", "0.125"] if tiny else ["--steps", "3", "--paper"]
    done = subprocess.run(bench, cwd=REPO, capture_output=True, text=True)
    res["bench_rc"], res["bench_table"] = done.returncode, (done.stdout or done.stderr)[-3000:]
    if tiny:
        res["faces_py"] = "cpu-tiny: tests/test_faces_script.py runs faces.py in `make test`"
        return
    out = WORK / f"faces_{time.strftime('%H%M%S')}"
    argv = ["render.size=64", "render.supersample=1", "pretrain_set.identities=8", "pretrain_set.per_identity=4",
            "finetune_set.subjects=4", "finetune_set.frames=12", "finetune_set.bp4d_images=false", "au_cnn.width=1.0",
            "au_cnn.fc=1024", "pretrain.max_epochs=2", "finetune.max_epochs=2", "scaling.images=[]",
            "scaling.identities=[]", "folds=2", "progress=false", f"device={device.type}", f"out={out}"]
    t0 = time.time()
    done = subprocess.run([sys.executable, str(REPO / "faces.py"), *argv], cwd=REPO, capture_output=True, text=True)
    res["faces_py_s"], res["faces_py_rc"] = time.time() - t0, done.returncode
    res["faces_py_tail"] = (done.stdout + done.stderr)[-2000:]
    res["complete"] = done.returncode == 0 and (out / "results.json").exists()


PART_FUNCS = {name: globals()[f"part_{name}"] for name in PARTS}


# ------------------------------------------------------------------------------------ driver
def run_part(name: str, out: Path, tiny: bool, limit: float) -> dict:
    path = out / f".part_{name}.json"
    path.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, str(out), "--part", name] + (["--cpu-tiny"] if tiny else [])
    t0 = time.time()
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=limit)
        status = "ok" if done.returncode == 0 else f"failed (rc {done.returncode})"
        err = done.stderr[-3000:] if done.returncode else ""
    except subprocess.TimeoutExpired as e:
        status, err = f"timed out at {limit:.0f} s", (e.stderr or b"")[-2000:]
        err = err.decode(errors="replace") if isinstance(err, bytes) else err
    result = json.loads(path.read_text()) if path.exists() else {}
    path.unlink(missing_ok=True)
    if name == "task_b" and "run_dir" in result and "epochs_logged" not in result:
        result.update(epoch_log(Path(result["run_dir"])))
    if name == "pytest_gpu" and result.get("ok") is False:
        status = "failed (tests)"
    return {"status": status, "wall_s": round(time.time() - t0, 1), "result": result, **({"stderr": err} if err else {})}


def figures(name: str, r: dict) -> tuple[str, str]:
    """(figures, met?) for the Markdown table."""
    g = r["result"]
    f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
    if name == "pytest_gpu":
        text = g.get("skipped") or ", ".join(f"{n} {k}" for k, n in g.get("counts", {}).items())
        return text, "yes" if g.get("ok") else ("-" if "skipped" in g else "no")
    if name == "kmeans":
        parts = [f"{b}: " + (g[b]["error"] if "error" in g[b] else
                             f"{f(g[b]['ms_per_iteration'])} ms/iter, peak {f(g[b]['peak_gpu_mib'], 0)} MiB")
                 for b in ("keops", "torch") if b in g]
        keops = g.get("keops", {}).get("ms_per_iteration")     # None: not run or refused
        return f"N={g.get('N')}, k={g.get('k')}: " + "; ".join(parts), "-" if keops is None else ("yes" if keops <= 15 else "no")
    if name == "kmeans_sweep":
        done = ", ".join(f"k={x['k']} {x['seconds']:.1f}s/{x['n_iter']}it" for x in g.get("rows", []))
        total = g.get("total_s")
        met = "yes" if g.get("complete") and total < 180 else ("no" if total and total >= 180 or r["status"] != "ok" else "-")
        return f"total {f(total)} s" + ("" if g.get("complete") else " (unfinished)") + f" [{done}]", met
    if name == "cooccurrence":
        sec = g.get("seconds")
        return f"{g.get('tokens')} tokens: {f(sec, 3)} s", "-" if sec is None else ("yes" if sec < 1 else "no")
    if name == "glove":
        return (f"d={g.get('dim')}, {g.get('how')}: {f(g.get('seconds'))} s, {g.get('epochs')} epochs, "
                f"loss {g.get('final_loss')}"), "-"
    if name == "distributed":
        return f"CPU 1 process x {g.get('cpu_threads')} threads {f(g.get('cpu_1_process_ms'))} ms/iter; " \
               f"1 GPU {f(g.get('gpu_1_ms'))} ms/iter (N={g.get('frames')}, k={g.get('k')})", "-"
    if name == "lstm":
        text = "; ".join(f"{x['method']} {x['ms_per_step']:.1f} ms" for x in g.get("rows", []))
        return f"R={g['rows'][0]['R'] if g.get('rows') else '?'}: {text}; fastest replicated: {g.get('fastest_replicated')}", "-"
    if name == "faces":
        rates = re.findall(r"^\| (.+?) \| ([\d.]+) \|$", g.get("bench_table", ""), flags=re.M)
        text = "; ".join(f"{n.split(' (')[0]} {v}/s" for n, v in rates)
        run = g.get("faces_py") or f"faces.py tiny on the device: rc {g.get('faces_py_rc')}, {f(g.get('faces_py_s'))} s"
        return f"{text}; {run}", "-" if "faces_py" in g else ("yes" if g.get("complete") else "no")
    sec, per = g.get("seconds"), g.get("s_per_epoch")
    est = None if sec is None else 6 * sec
    return (f"one row: {f(sec)} s ({g.get('epochs_logged')} epochs logged, {f(per, 2)} s/epoch; inputs "
            f"{f(g.get('inputs_s'))} s); 6 rows ~ {f(est)} s"), "-" if est is None else ("yes" if est < 600 else "no")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--cpu-tiny", action="store_true", help="tiny sizes on the CPU (the test of this script)")
    ap.add_argument("--budget", type=float, default=460.0, help="seconds for all parts together")
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    ap.add_argument("--part", help=argparse.SUPPRESS)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("FACEVOCAB_KEOPS_CACHE", str(WORK / "keops"))   # one compile, shared by the parts
    if a.part:                                                             # a child: one part
        import torch
        device = torch.device("cpu" if a.cpu_tiny else "cuda")
        if a.cpu_tiny:
            torch.set_num_threads(1)  # as train.py on the CPU: on a busy box intra-op threads only wait
        PART_FUNCS[a.part](Partial(out / f".part_{a.part}.json"), sizes(a.cpu_tiny), device, a.cpu_tiny)
        return 0
    installed = ensure_packages()
    import torch
    if not a.cpu_tiny and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu-tiny for the CPU mode")
    start, report = time.time(), {}
    machine = torch.cuda.get_device_name() if not a.cpu_tiny else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    for name in a.parts:
        left = a.budget - (time.time() - start)
        limit = TINY_LIMIT if a.cpu_tiny else min(PARTS[name][0], left)
        if limit < 5:
            report[name] = {"status": "not run (budget spent)", "wall_s": 0.0, "result": {}}
            continue
        report[name] = run_part(name, out, a.cpu_tiny, limit)
        print(f"{name}: {report[name]['status']} in {report[name]['wall_s']} s", flush=True)
    summary = {"machine": machine, "torch": torch.__version__, "cuda": torch.version.cuda, "mode":
               "cpu-tiny" if a.cpu_tiny else "gpu", "installed_from_wheels": installed,
               "total_s": round(time.time() - start, 1), "budget_s": a.budget, "parts": report}
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    lines = [f"GPU check on {machine}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
             f"{summary['mode']} mode, {summary['total_s']} s in all (budget {a.budget:.0f} s)", "",
             "| part | status | wall s | figures | target | met |", "|---|---|---:|---|---|---|"]
    for name, r in report.items():
        text, met = figures(name, r)
        lines.append(f"| {name} | {r['status']} | {r['wall_s']} | {text} | {PARTS[name][1]} | {met} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["status"] == "ok" for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
