"""Training an AU detector on face crops: Adam, masked BCE, online augmentation, early stopping, resume.

    result = fit(model, train=(images, labels), val=(images, labels), cfg=FitConfig(lr=1e-4), ...)

images (N, C, S, S) uint8 (kept as uint8 on the device: 4 KB a face), labels (N, A) float 0/1 with
NaN where unlabelled (left out of the loss). One epoch is one pass over a fresh permutation;
after each, the validation loss decides early stopping (`patience` epochs without improvement)
and a checkpoint (model, optimiser, generators, history, best weights) is written atomically,
so an interrupted run resumes at the next epoch and ends with the same weights.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from faces.augment import AugmentConfig, augment, normalise
from losses.au_detection import positive_weights
from utils.artifacts import load_torch
from utils.io import save_torch


@dataclass
class FitConfig:
    lr: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 500
    patience: int = 10          # early stopping: epochs without a better validation loss
    augment: bool = True
    # weight each AU's positives by its negatives / positives in the training labels (not in the
    # paper, whose plain BCE on 130k frames it keeps at False): with ~1,000 frames and 5-25 %
    # positives, plain BCE never pushed a probability past 0.5, so F1 at 0.5 stayed 0 at ROC-AUC 60-75
    balance: bool = False


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean BCE over the labelled entries; pos_weight (A,) scales each AU's positive term."""
    keep = ~torch.isnan(labels)
    weight = None if pos_weight is None else pos_weight.expand_as(labels)[keep]
    return F.binary_cross_entropy_with_logits(logits[keep], labels[keep], pos_weight=weight)


def balancing_weights(labels: torch.Tensor, cap: float = 50.0) -> torch.Tensor:
    """(A,) negatives / positives per AU among the labelled entries (0/1, NaN unlabelled)."""
    keep = ~torch.isnan(labels)
    pos = (torch.nan_to_num(labels) * keep).sum(0)
    return positive_weights(pos, keep.sum(0) - pos, cap)


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, *, batch: int = 256) -> torch.Tensor:
    """Probabilities (N, A) on the model's device for uint8 images (N, C, S, S)."""
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    out = [torch.sigmoid(model(normalise(images[i:i + batch].to(dev)))) for i in range(0, len(images), batch)]
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, model.head.out_features, device=dev)


@torch.no_grad()
def _loss(model, images, labels, batch=256, pos_weight=None) -> float:
    dev = next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(images), batch):
        y = labels[i:i + batch].to(dev)
        keep = int((~torch.isnan(y)).sum())
        total += float(masked_bce(model(normalise(images[i:i + batch].to(dev))), y, pos_weight)) * keep
        count += keep
    model.train()
    return total / max(count, 1)


def fit(model: torch.nn.Module, *, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
        cfg: FitConfig, aug: AugmentConfig = AugmentConfig(), seed: int = 0, checkpoint: Path | None = None,
        log: Callable[[dict], None] | None = None, desc: str = "fit", progress: bool = True) -> dict:
    """Train in place; the model ends with its best-validation weights. Returns the history."""
    dev = next(model.parameters()).device
    x_tr, y_tr = train[0].to(dev), train[1].to(dev)
    x_va, y_va = val
    pos_weight = balancing_weights(y_tr) if cfg.balance else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    order_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    state = {"epoch": 0, "best_val": float("inf"), "bad": 0, "history": [], "done": False,
             "best": copy.deepcopy(model.state_dict())}
    if checkpoint is not None and Path(checkpoint).exists():
        ck = load_torch(checkpoint, "training checkpoint")   # tensors and plain values only; CPU
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        order_gen.set_state(ck["order_gen"])
        aug_gen.set_state(ck["aug_gen"].to(aug_gen.get_state().device))
        state = ck["state"]
    bar = tqdm(total=cfg.max_epochs, initial=state["epoch"], desc=desc, disable=not progress or state["done"],
               leave=False, unit="ep")
    model.train()
    while not state["done"] and state["epoch"] < cfg.max_epochs:
        t0, total, seen = time.perf_counter(), 0.0, 0
        perm = torch.randperm(len(x_tr), generator=order_gen).to(dev)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            x = normalise(x_tr[idx])
            if cfg.augment:
                x = augment(x, aug, aug_gen)
            loss = masked_bce(model(x), y_tr[idx], pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)   # note: a CPU-GPU sync per batch; cheap next to the step
            seen += len(idx)
        seconds = time.perf_counter() - t0
        val_loss = _loss(model, x_va, y_va, pos_weight=pos_weight)
        state["epoch"] += 1
        row = {"epoch": state["epoch"], "train_loss": total / max(seen, 1), "val_loss": val_loss,
               "images_per_s": seen / max(seconds, 1e-9)}
        state["history"].append(row)
        if val_loss < state["best_val"] - 1e-6:
            state["best_val"], state["bad"] = val_loss, 0
            state["best"] = copy.deepcopy(model.state_dict())
        else:
            state["bad"] += 1
        state["done"] = state["bad"] >= cfg.patience or state["epoch"] >= cfg.max_epochs
        if log is not None:
            log(row)
        if checkpoint is not None:
            save_torch({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state,
                        "order_gen": order_gen.get_state(), "aug_gen": aug_gen.get_state()}, checkpoint)
        bar.update(1)
        bar.set_postfix(train=f"{row['train_loss']:.3f}", val=f"{val_loss:.3f}")
    bar.close()
    model.load_state_dict(state["best"])
    return {"history": state["history"], "best_val": state["best_val"],
            "best_epoch": min(range(len(state["history"])), key=lambda e: state["history"][e]["val_loss"]) + 1
            if state["history"] else 0}
