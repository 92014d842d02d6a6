"""Downstream regression: train and evaluate one model on one task, or a whole sweep (the paper's tables).

    python train.py task=task_a model=bilstm_glove bilstm_glove.d=50
    python train.py sweep=configs/sweep.yaml workers=2

Config: configs/train.yaml, schema in training/config.py. A run writes config.yaml, metrics.json,
best.pt and TensorBoard events to `out`; a sweep writes one run per (task, row) and results.md/csv.
"""
import torch
from threadpoolctl import threadpool_limits

from training.config import compose, threads_for
from training.experiment import run
from training.sweep import run_sweep
from utils.cli import run_script
from utils.device import pick_device


def main(argv: list[str]) -> int:
    cfg = compose(argv)
    device = pick_device(cfg.device)   # resolved once; a sweep hands it to its workers
    if cfg.sweep:
        return run_sweep(cfg, argv, device)
    torch.set_num_threads(threads_for(cfg, device))
    threadpool_limits(threads_for(cfg, device))  # numpy / scikit-learn BLAS as well
    metrics = run(cfg, device)
    print(f"{cfg.task}/{cfg.model} -> {cfg.out}")
    for target, s in metrics["targets"].items():
        print(f"  {target:28s} pcc {s['pcc']:.3f} ± {s['pcc_std']:.3f}  rmse {s['rmse']:.3f} ± {s['rmse_std']:.3f}"
              f"  ccc {s['ccc']:.3f}" + ("  (constant predictions in some split)" if s["constant_splits"] else ""))
    return 0


if __name__ == "__main__":
    run_script(main, "train.py")
