"""A sweep: every row (model + its settings) of a YAML on every task, then the results tables.

    python train.py sweep=configs/sweep.yaml [key=value ...] [workers=2]

A run's config is composed as: train.yaml <- config=FILE <- the sweep's `common` <- the command
line <- the row (`task`, `model`, `out`, then its `set`). Runs live in `<out>/<task>/<row id>`; a run
whose metrics.json exists is not redone, so an interrupted sweep resumes where it stopped; a
finished run whose config changed since is refused (utils.runs.open_run_dir) before anything trains. With `workers > 1` runs train in parallel processes
(each with cores / workers torch threads; on a GPU they share the device).
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Dict, List

import torch
from omegaconf import DictConfig, OmegaConf

from models.registry import get_model
from training.config import RESUMABLE_KEYS, TrainConfig, compose, run_config, threads_for
from training.experiment import check_inputs
from training.results import write_results
from utils.config import ConfigError, load_yaml_layer, merge_layer
from training.artifacts import read_metrics
from utils import names
from utils.io import save_text
from utils.cli import USER_ERRORS
from utils.processes import stop_pool, worker_init
from utils.runs import lock_dir, open_run_dir, release_dir


@dataclass
class RowConfig:
    id: str = ""               # directory name of the run
    label: str = ""            # row label in the tables (default: the id)
    model: str = ""
    tasks: List[str] = field(default_factory=list)   # empty: every task of the sweep
    set: Dict[str, Any] = field(default_factory=dict)  # train.yaml keys for this row


@dataclass
class SweepConfig:
    name: str = "sweep"
    out: str = ""              # empty: ROOT/train (train.py's `root`)
    workers: int = 0           # processes, unless workers= is given on the command line (0: train.py's)
    tasks: List[str] = field(default_factory=lambda: ["task_a", "task_b"])
    common: Dict[str, Any] = field(default_factory=dict)  # train.yaml keys for every run
    rows: List[RowConfig] = field(default_factory=list)


def load_sweep(path: str | Path) -> DictConfig:
    path = Path(path)
    sweep = merge_layer(OmegaConf.structured(SweepConfig), load_yaml_layer(path, f"sweep={path}"), str(path))
    ids = [r.id for r in sweep.rows]
    unsafe = [i for i in ids if Path(i).name != i or i in (".", "..") or "\\" in i]
    if unsafe:
        raise ConfigError(f"{path}: row id(s) {unsafe} would write outside the sweep's folder: "
                          f"an id is a plain folder name")
    if not ids or any(not r.id or not r.model for r in sweep.rows) or len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: every row needs a unique `id` and a `model` (ids: {ids})")
    return sweep


def plan(sweep: DictConfig, argv: list[str], root: Path) -> list[tuple[str, DictConfig, DictConfig]]:
    """(task, row, run config) of every run, validated before anything trains."""
    jobs = []
    for task in sweep.tasks:
        for row in sweep.rows:
            if row.tasks and task not in row.tasks:
                continue
            where = f"sweep row {row.id}"
            cfg = compose(argv, before=[("sweep common", sweep.common)],
                          after=[(where, {"task": task, "model": row.model, "out": str(root / task / row.id)}),
                                 (f"{where} set", row.set)])
            jobs.append((task, row, cfg))
    return jobs


def _report(run: str, err: Exception) -> None:
    """A failed run: one line for a user's mistake (a damaged input, say), the traceback for a bug."""
    if isinstance(err, USER_ERRORS):
        print(f"{run}: {err.args[0] if isinstance(err, KeyError) and err.args else err}", file=sys.stderr, flush=True)
    else:
        traceback.print_exception(err)


def _init_worker(threads: int, parent: int | None = None) -> None:
    if parent is not None:
        worker_init(parent)
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # BLAS/OpenMP of numpy and scikit-learn too


def _run_job(yaml_text: str, device: str) -> dict:
    from training.experiment import run  # imported in the worker process
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(yaml_text))
    return run(cfg, torch.device(device), log=lambda s: print(s, flush=True))


def run_sweep(cfg: DictConfig, argv: list[str], device: torch.device) -> int:
    """Run (or resume) every run of the sweep, write the tables, print them; returns an exit code."""
    sweep = load_sweep(cfg.sweep)
    root = Path(cfg.sweep_out or sweep.out or f"{cfg.root}/train")
    if cfg.sweep_tasks:
        unknown = sorted(set(cfg.sweep_tasks) - set(sweep.tasks))
        if unknown:
            raise ConfigError(f"sweep_tasks: {unknown} not among the sweep's tasks {list(sweep.tasks)}")
        sweep.tasks = list(cfg.sweep_tasks)
    jobs = plan(sweep, argv, root)
    workers = cfg.workers if any(a.startswith("workers=") for a in argv) or not sweep.workers else sweep.workers
    lock_dir(root)              # one sweep at a time writes the tables (each run locks its own folder too)
    for _, _, run_cfg in jobs:  # refuses, before anything trains, a finished run whose config or inputs changed
        check_inputs(run_cfg, open_run_dir(run_cfg.out, run_config(run_cfg), ignore=RESUMABLE_KEYS))
        release_dir(run_cfg.out)  # the process that trains it takes it again
    todo = [j for j in jobs if not (Path(j[2].out) / names.METRICS).exists()]
    # sequence models first: the longest runs start early, the baselines fill the gaps
    todo.sort(key=lambda j: get_model(j[2].model).kind != "sequence")
    print(f"sweep {sweep.name}: {len(jobs)} runs, {len(jobs) - len(todo)} already finished, "
          f"{len(todo)} to run with {workers} worker(s) -> {root}", flush=True)
    threads = threads_for(cfg, device, workers)
    start, failed = time.time(), []
    if workers <= 1:
        _init_worker(threads)
        for task, row, run_cfg in todo:
            t0 = time.time()
            try:
                _run_job(OmegaConf.to_yaml(run_cfg, resolve=True), str(device))
                print(f"{task}/{row.id}: done in {time.time() - t0:.0f}s", flush=True)
            except Exception as err:  # a failed run is reported; the others still run
                failed.append(f"{task}/{row.id}")
                _report(f"{task}/{row.id}", err)
    else:
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads, os.getpid()))
        try:
            futures = {pool.submit(_run_job, OmegaConf.to_yaml(c, resolve=True), str(device)): f"{t}/{r.id}"
                       for t, r, c in todo}
            for future in as_completed(futures):
                try:
                    future.result()
                    print(f"{futures[future]}: done ({time.time() - start:.0f}s into the sweep)", flush=True)
                except Exception as err:
                    failed.append(futures[future])
                    _report(futures[future], err)
        except BaseException:   # Ctrl-C, SIGTERM: the workers stop now, not after their running jobs
            stop_pool(pool)
            raise
        pool.shutdown()
    tables = []
    for task in sweep.tasks:
        rows = [(row.id, row.label or row.id, _metrics(c.out)) for t, row, c in jobs if t == task]
        protocol = next(c[task].protocol for t, _, c in jobs if t == task)
        tables.append(write_results(root / task, task, protocol, rows))
    text = f"# {sweep.name}\n\n" + "\n".join(tables)
    save_text(text, root / "results.md")
    print(f"\nsweep finished in {time.time() - start:.0f}s; tables in {root}/results.md\n\n{text}", flush=True)
    if failed:
        print(f"FAILED runs: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _metrics(out: str) -> dict | None:
    path = Path(out) / names.METRICS
    return read_metrics(path) if path.exists() else None
