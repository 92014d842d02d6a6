"""The one config schema of train.py, and how a sweep composes a run's config from layers.

`task=task_a` picks the task section (inputs, targets, protocol, sequence options), `model=NAME`
picks a model from the registry and its section (same name). Every section is a dataclass, so
a misspelled key or a wrong type anywhere is an error naming the key. A run directory stores only
the sections the run used (`run_config`), so changing another model's options does not make a
finished run look different.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from data.tasks.targets import TASK_TARGETS, TASKS
from models.registry import get_model, known_models
from utils.config import ConfigError, above, at_least, between, check_ranges, load_config, one_of



@dataclass
class TaskConfig:
    corpus: str = ""         # frame corpus dir (data.openface.ingest): bilstm_au and the baselines
    tokens: str = ""         # dir holding tokens.pt (cluster.py with the pretraining vocabulary)
    embeddings: str = ""     # dir holding embeddings_d{d}.pt (embed.py): bilstm_glove
    labels: str = ""         # labels.csv
    targets: List[str] = field(default_factory=list)  # empty: every target column of labels.csv
    protocol: str = "kfold"  # kfold | split
    folds: int = 10
    grouped: bool = False    # kfold: no subject in two of train/validation/test
    fold_seed: int = 42
    val_fraction: float = 0.25
    restarts: int = 1        # models trained per target and split; the best on validation is kept
    select: str = "ccc"      # validation metric choosing restarts and SVR settings: ccc | pcc | rmse
    joint_targets: bool = False  # one network predicts all targets (fast) instead of one per target (paper)
    max_len: Optional[int] = None  # steps kept per sequence after striding (None: all)
    stride: int = 1          # keep every stride-th frame/token, after cropping to max_len * stride
    crop: str = "last"       # keep the last (released code) or first max_len * stride


@dataclass
class LoopConfig:
    lr: float = 1e-3
    batch_size: int = 8
    max_epochs: int = 100
    patience: int = 10       # early stopping on validation loss, per replica
    parallel_restarts: int = 0  # replicas (targets x restarts) per batched model; 0: all on CUDA, 1 on CPU
    bucket: bool = True      # length-bucketed batches (less padding)


@dataclass
class RunConfig:
    task: str = "task_a"
    model: str = "bilstm_au"
    root: str = "runs/demo"    # the pipeline's output folder; the task paths in train.yaml hang off it
    out: str = "${root}/train/${task}/${model}"
    sweep: str = ""            # a sweep YAML: run every row of it instead of one model
    sweep_out: str = ""        # where the sweep's runs and tables go (empty: the sweep's `out`, else ROOT/train)
    sweep_tasks: List[str] = field(default_factory=list)  # run only these tasks of the sweep (empty: all)
    workers: int = 1           # sweep: runs trained at once, one process each
    device: str = "auto"
    threads: int = 0           # torch threads per process; 0: 1 on the CPU (see threads_for), cores / workers on CUDA
    seed: int = 0
    progress: bool = True
    task_a: TaskConfig = field(default_factory=lambda: TaskConfig(targets=list(TASK_TARGETS["task_a"])))
    task_b: TaskConfig = field(default_factory=lambda: TaskConfig(
        targets=list(TASK_TARGETS["task_b"]), protocol="split", restarts=50, max_len=500, stride=6))
    train: LoopConfig = field(default_factory=LoopConfig)


TASK_RANGES = {"folds": at_least(2), "val_fraction": between(0.01, 0.99), "restarts": at_least(1),
               "max_len": at_least(1), "stride": at_least(1), "crop": one_of("last", "first")}
LOOP_RANGES = {"lr": above(0), "batch_size": at_least(1), "max_epochs": at_least(1), "patience": at_least(1),
               "parallel_restarts": at_least(0)}
TRAINED_KINDS = ("sequence", "baseline")   # train.py's models; AU detectors belong to faces.py

# train.py's schema: the run's own keys plus one section per registered model, named as the model,
# typed by the dataclass the model registered with (models/registry.py)
TrainConfig = make_dataclass("TrainConfig", [
    (name, get_model(name).config, field(default_factory=get_model(name).config)) for name in known_models(*TRAINED_KINDS)],
    bases=(RunConfig,))


def threads_for(cfg: DictConfig, device: torch.device, workers: int = 1) -> int:
    """Torch threads per process. On the CPU one: these LSTMs are too small for intra-op threads to
    pay, and on a busy machine OpenMP threads that spin-wait made one run 3-20x slower (measured)."""
    if cfg.threads:
        return cfg.threads
    if device.type == "cpu":
        return 1
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


# keys of a run that may change between resumptions without changing its results
RESUMABLE_KEYS = ("device", "threads")


def compose(argv: Sequence[str] = (), *, before: Sequence[tuple[str, Any]] = (),
            after: Sequence[tuple[str, Any]] = (), defaults: str | Path | None = "configs/train.yaml") -> DictConfig:
    """schema <- defaults YAML <- config=FILE <- `before` layers <- argv pairs <- `after` layers.

    Layers are (source, dict or DictConfig); a sweep puts its common settings before the command
    line and each row's own settings (task, model, out, overrides) after it. Errors name the source.
    """
    cfg = load_config(TrainConfig, argv, defaults, before=before, after=after)
    check(cfg)
    return cfg


def check(cfg: DictConfig) -> None:
    """Values the types cannot check."""
    if cfg.task not in TASKS:
        raise ConfigError(f"task={cfg.task}: unknown task; known tasks: {', '.join(TASKS)}")
    if cfg.model not in known_models(*TRAINED_KINDS):
        raise ConfigError(f"model={cfg.model}: unknown model; known models: {', '.join(known_models(*TRAINED_KINDS))}")
    task = cfg[cfg.task]
    if task.protocol not in ("kfold", "split"):
        raise ConfigError(f"{cfg.task}.protocol={task.protocol}: must be kfold or split")
    if task.select not in ("ccc", "pcc", "rmse", "mse"):
        raise ConfigError(f"{cfg.task}.select={task.select}: must be ccc, pcc, rmse or mse")
    check_ranges(task, TASK_RANGES, prefix=f"{cfg.task}.")
    check_ranges(cfg.train, LOOP_RANGES, prefix="train.")
    check_ranges(cfg, {"workers": at_least(1), "threads": at_least(0)})
    check_ranges(cfg[cfg.model], getattr(get_model(cfg.model).config, "RANGES", {}), prefix=f"{cfg.model}.")


def run_config(cfg: DictConfig) -> DictConfig:
    """What one run depends on: the top-level keys, its task section, the loop and its model section.
    It is itself a valid `config=FILE` for train.py."""
    keep = ["task", "model", "device", "threads", "seed", cfg.task, "train", cfg.model]
    return OmegaConf.create({k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig)
                             else cfg[k] for k in keep})
