"""Fung & McDuff's two stages on arrays: noisy-label pretraining and subject-exclusive fine-tuning.

    state = pretrain(make_model, crops, noisy_labels, cfg=..., out=DIR)          # best weights, 17 outputs
    probs_k = finetune_fold(make_model, crops, labels, subjects, k=k, init=state, folds=3, out=DIR)

The folds put each subject in exactly one test fold; inside the training subjects a share
`val_share` (at least one subject) is held out for early stopping. Its result holds out-of-fold
probabilities for every frame (each from the model that never saw that subject), which is what the
metrics and the detector's OpenFace CSVs use. Each fit resumes from its checkpoint; a finished
fold leaves `fold{k}.pt` (probabilities, weights, history) and is not trained again.

faces.py runs every pretraining and then every fold as a `FitJob` through `run_fit`, so
independent fits share the CPU cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from faces.augment import AugmentConfig
from faces.fit import FitConfig, fit, predict
from utils.artifacts import load_torch
from utils.io import save_torch


def _tensor_images(crops: np.ndarray) -> torch.Tensor:   # (N, S, S) or (N, S, S, C) uint8 -> (N, C, S, S)
    t = torch.from_numpy(np.ascontiguousarray(crops))
    return t[:, None] if t.dim() == 3 else t.permute(0, 3, 1, 2).contiguous()


def pretrain(make_model: Callable[[int], torch.nn.Module], crops: np.ndarray, labels: np.ndarray, *,
             cfg: FitConfig, aug: AugmentConfig, out: Path, seed: int, device: torch.device,
             val_share: float = 0.05, log=None, progress: bool = True) -> dict:
    """Train a fresh model on noisy labels (95/5 split, as the paper). Returns its state dict (CPU)."""
    out.mkdir(parents=True, exist_ok=True)
    done = out / "best.pt"
    if done.exists():
        return load_torch(done, "pretrained model")
    torch.manual_seed(seed)
    model = make_model(labels.shape[1]).to(device)
    perm = np.random.default_rng(seed).permutation(len(crops))
    n_val = max(1, int(round(val_share * len(crops))))
    va, tr = perm[:n_val], perm[n_val:]
    x, y = _tensor_images(crops), torch.from_numpy(labels.astype(np.float32))
    hist = fit(model, train=(x[tr], y[tr]), val=(x[va], y[va]), cfg=cfg, aug=aug, seed=seed,
               checkpoint=out / "checkpoint.pt", log=log, desc=f"pretrain {out.name}", progress=progress)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch(hist, out / "history.pt")
    save_torch(state, done)
    return state


def subject_folds(subjects: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N,) fold of each frame: subjects shuffled, then dealt round-robin into `folds` groups."""
    uniq = np.unique(subjects)
    if len(uniq) < folds:
        raise ValueError(f"{folds}-fold cross-validation needs at least {folds} subjects, got {len(uniq)}")
    order = np.random.default_rng(seed).permutation(uniq)
    fold_of = {s: i % folds for i, s in enumerate(order.tolist())}
    return np.array([fold_of[s] for s in subjects.tolist()])


def finetune_fold(make_model: Callable[[int], torch.nn.Module], crops: np.ndarray, labels: np.ndarray,
                  subjects: np.ndarray, *, k: int, init: dict | None, cfg: FitConfig, aug: AugmentConfig, out: Path,
                  folds: int, seed: int, device: torch.device, val_share: float = 0.2, log=None,
                  progress: bool = True) -> torch.Tensor:
    """Fold k of the CV: trains on the other folds' people (less a validation share), leaves
    out/fold{k}.pt and returns the probabilities (n_test, A) of fold k's frames (CPU)."""
    out.mkdir(parents=True, exist_ok=True)
    done = out / f"fold{k}.pt"
    if done.exists():
        return load_torch(done, "fold result")["probs"]
    fold = subject_folds(subjects, folds, seed)
    x, y = _tensor_images(crops), torch.from_numpy(labels.astype(np.float32))
    test = np.flatnonzero(fold == k)
    train_subj = np.unique(subjects[fold != k])
    n_val = max(1, int(round(val_share * len(train_subj))))
    val_subj = np.random.default_rng([seed, k]).permutation(train_subj)[:n_val]
    is_val = np.isin(subjects, val_subj) & (fold != k)
    tr, va = np.flatnonzero((fold != k) & ~is_val), np.flatnonzero(is_val)
    torch.manual_seed(seed + k)
    if init is None:
        model = make_model(labels.shape[1])
    else:
        model = make_model(init["head.weight"].shape[0])
        model.load_state_dict(init)
        model.replace_head(labels.shape[1], generator=torch.Generator().manual_seed(seed + k))
    model = model.to(device)
    hist = fit(model, train=(x[tr], y[tr]), val=(x[va], y[va]), cfg=cfg, aug=aug, seed=seed + 10 * k,
               checkpoint=out / f"fold{k}.ckpt", log=log, desc=f"finetune {out.name} fold {k + 1}/{folds}",
               progress=progress)
    p = predict(model, x[test].to(device)).cpu()
    state = {k_: v.detach().cpu() for k_, v in model.state_dict().items()}
    save_torch({"probs": p, "test": torch.from_numpy(test), "model": state, "history": hist}, done)
    (out / f"fold{k}.ckpt").unlink(missing_ok=True)
    return p


@dataclass
class FitJob:
    """One training of the face stage, picklable so that jobs run in parallel processes:
    `fold` None pretrains variant `name` on the stills `pretrain_idx`; a fold number fine-tunes
    that fold of the CV, from the variant's pretrained weights (from scratch: `pretrain_idx` None)."""
    name: str
    fold: int | None
    model: str                     # registry name
    model_cfg: dict
    pretrain_idx: np.ndarray | None
    data: tuple                    # pretraining: (crops, noisy labels); fine-tuning: (crops, labels, subjects)
    fit_cfg: FitConfig
    aug: AugmentConfig
    out: Path                      # the run directory
    folds: int
    val_share: float
    seed: int
    device: str
    threads: int
    progress: bool


def run_fit(job: FitJob):
    """Runs in a worker: the job's training, logged to TensorBoard under tb/<name>/. Returns the
    fold's test probabilities (numpy), or None for a pretraining (its weights are in best.pt, which
    the fold jobs read: nothing to send back)."""
    import models  # noqa: F401  (fills the registry in a fresh interpreter)
    from torch.utils.tensorboard import SummaryWriter
    from models.registry import get_model
    torch.set_num_threads(job.threads)
    device = torch.device(job.device)
    entry = get_model(job.model)
    make = lambda n_out: entry.factory(n_outputs=n_out, **job.model_cfg)
    part = "pretrain" if job.fold is None else f"finetune/fold{job.fold}"
    tb = SummaryWriter(str(job.out / "tb" / job.name / part.replace("/", "_")))

    def log(row):
        for key in ("train_loss", "val_loss", "images_per_s"):
            tb.add_scalar(f"{part}/{key}", row[key], row["epoch"])

    try:
        if job.fold is None:
            crops, labels = job.data
            pretrain(make, crops[job.pretrain_idx], labels[job.pretrain_idx], cfg=job.fit_cfg, aug=job.aug,
                     out=job.out / "pretrain" / job.name, seed=job.seed, device=device, progress=job.progress, log=log)
            return None
        init = None if job.pretrain_idx is None else load_torch(job.out / "pretrain" / job.name / "best.pt",
                                                                "pretrained model")
        crops, labels, subjects = job.data
        return finetune_fold(make, crops, labels, subjects, k=job.fold, init=init, cfg=job.fit_cfg, aug=job.aug,
                             out=job.out / "finetune" / job.name, folds=job.folds, seed=job.seed, device=device,
                             val_share=job.val_share, log=log, progress=job.progress).numpy()
    finally:
        tb.close()


def fold_models(out: Path, folds: int) -> list[dict]:
    """The state dicts the folds left in `out`, one per fold."""
    return [load_torch(out / f"fold{k}.pt", "fold result")["model"] for k in range(folds)]
