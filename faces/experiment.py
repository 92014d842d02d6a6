"""Fung & McDuff's two stages on arrays: noisy-label pretraining and subject-exclusive fine-tuning.

    state = pretrain(make_model, crops, noisy_labels, cfg=..., out=DIR)          # best weights, 17 outputs
    oof = finetune_cv(make_model, crops, labels, subjects, init=state, folds=3, out=DIR)

`finetune_cv` puts each subject in exactly one test fold; inside the training subjects a share
`val_share` (at least one subject) is held out for early stopping. Its result holds out-of-fold
probabilities for every frame (each from the model that never saw that subject), which is what the
metrics and the detector's OpenFace CSVs use. Each fit resumes from its checkpoint; a finished
fold leaves `fold{k}.pt` and is not trained again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from faces.augment import AugmentConfig
from faces.fit import FitConfig, fit, predict
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
        return torch.load(done, map_location="cpu", weights_only=True)
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


def finetune_cv(make_model: Callable[[int], torch.nn.Module], crops: np.ndarray, labels: np.ndarray,
                subjects: np.ndarray, *, init: dict | None, cfg: FitConfig, aug: AugmentConfig, out: Path,
                folds: int, seed: int, device: torch.device, val_share: float = 0.2, log=None,
                progress: bool = True) -> dict:
    """Out-of-fold probabilities (N, A) and the fold of each frame; `init` None trains from scratch."""
    out.mkdir(parents=True, exist_ok=True)
    fold = subject_folds(subjects, folds, seed)
    x, y = _tensor_images(crops), torch.from_numpy(labels.astype(np.float32))
    probs = torch.full(y.shape, float("nan"))
    for k in range(folds):
        done = out / f"fold{k}.pt"
        test = np.flatnonzero(fold == k)
        if done.exists():
            probs[test] = torch.load(done, map_location="cpu", weights_only=True)["probs"]
            continue
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
        fit(model, train=(x[tr], y[tr]), val=(x[va], y[va]), cfg=cfg, aug=aug, seed=seed + 10 * k,
            checkpoint=out / f"fold{k}.ckpt", log=(lambda row, k=k: log(k, row)) if log else None,
            desc=f"finetune {out.name} fold {k + 1}/{folds}", progress=progress)
        p = predict(model, x[test].to(device)).cpu()
        state = {k_: v.detach().cpu() for k_, v in model.state_dict().items()}
        save_torch({"probs": p, "test": torch.from_numpy(test), "model": state}, done)
        (out / f"fold{k}.ckpt").unlink(missing_ok=True)
        probs[test] = p
    return {"probs": probs, "fold": fold}


def fold_models(out: Path, folds: int) -> list[dict]:
    """The state dicts finetune_cv left in `out`, one per fold."""
    return [torch.load(out / f"fold{k}.pt", map_location="cpu", weights_only=True)["model"] for k in range(folds)]
