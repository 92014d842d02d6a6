"""The training loop of the sequence models: plain functions over a model with R replicas.

A model maps (x, lengths) to (B, R, n_outputs); `target_index` (R, n_outputs) says which target
column each output of each replica learns. Targets are scaled to [-1, 1] by the training fold's
range (released code); the loss is the sum over replicas of each replica's MSE, so every replica
gets exactly the gradient of its own loss. Early stopping is per replica, on its validation loss;
the best state of each replica is kept (`merge_replicas`) and training stops once every replica
has waited `patience` epochs without improving, or after `max_epochs`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from data.tasks.sequences import SequenceDataset, make_loader


@dataclass
class TargetScale:
    lo: torch.Tensor     # (n_targets,)
    span: torch.Tensor   # (n_targets,) hi - lo, 1 where the training range is empty

    @classmethod
    def fit(cls, y: torch.Tensor) -> "TargetScale":  # y (n, n_targets) of the training fold
        lo, hi = y.min(0).values, y.max(0).values
        return cls(lo=lo, span=torch.where(hi > lo, hi - lo, torch.ones_like(lo)))

    def scale(self, y: torch.Tensor) -> torch.Tensor:
        return 2 * (y - self.lo.to(y)) / self.span.to(y) - 1

    def unscale(self, y: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
        """y (n, R, n_outputs) scaled -> label units of each output's target."""
        lo, span = self.lo.to(y)[target_index], self.span.to(y)[target_index]
        return (y + 1) / 2 * span + lo


@dataclass
class FitResult:
    best_state: dict
    best_epoch: torch.Tensor                                   # (R,) 0-based epoch of each replica's best
    train_loss: list[list[float]] = field(default_factory=list)  # per epoch, per replica
    val_loss: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0


def _replica_targets(batch_y: torch.Tensor, scale: TargetScale, target_index: torch.Tensor) -> torch.Tensor:
    return scale.scale(batch_y)[:, target_index]  # (B, R, n_outputs)


def train_one_epoch(model, loader, optimizer, *, scale: TargetScale, target_index: torch.Tensor,
                    device: torch.device) -> torch.Tensor:
    """One pass over `loader`; returns each replica's mean training loss (R,)."""
    model.train()
    total, count = torch.zeros(target_index.shape[0], device=device), 0
    for batch in loader:
        x, y = batch["x"].to(device, non_blocking=True), batch["y"].to(device, non_blocking=True)
        pred = model(x, batch["lengths"])                                     # (B, R, n_outputs)
        per_replica = ((pred - _replica_targets(y, scale, target_index)) ** 2).mean(dim=(0, 2))  # (R,)
        optimizer.zero_grad(set_to_none=True)
        per_replica.sum().backward()
        model.mask_grads()
        optimizer.step()
        total += per_replica.detach() * len(x)
        count += len(x)
    return total / max(count, 1)  # note: one CPU-GPU sync per epoch, at the caller's .tolist()


@torch.no_grad()
def evaluate(model, dataset: SequenceDataset, indices, *, scale: TargetScale, target_index: torch.Tensor,
             device: torch.device, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions (n, R, n_outputs) in label units, in the order of `indices`, and each replica's
    scaled MSE over all n items (R,)."""
    model.eval()
    indices = torch.as_tensor(list(indices), dtype=torch.long)
    preds, order = [], []
    for batch in make_loader(dataset, indices.tolist(), batch_size=batch_size, shuffle=False):
        preds.append(model(batch["x"].to(device, non_blocking=True), batch["lengths"]))
        order.append(batch["index"])
    pred = torch.cat(preds)                                                     # (n, R, n_outputs) scaled
    position = {int(i): k for k, i in enumerate(torch.cat(order))}
    pred = pred[torch.tensor([position[int(i)] for i in indices], device=pred.device)]
    y = dataset.targets[indices].to(device)
    loss = ((pred - _replica_targets(y, scale, target_index)) ** 2).mean(dim=(0, 2))
    return scale.unscale(pred, target_index).cpu(), loss.cpu()


def fit(model, dataset: SequenceDataset, train_idx, val_idx, *, target_index: torch.Tensor,
        scale: TargetScale, device: torch.device, lr: float = 1e-3, batch_size: int = 8,
        max_epochs: int = 100, patience: int = 10, bucket: bool = True, seed: int = 0,
        log_path: str | Path | None = None) -> FitResult:
    """Adam on the training indices, early stopping per replica on the validation indices."""
    start = time.time()
    model.to(device)
    target_index = target_index.to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loader = make_loader(dataset, list(train_idx), batch_size=batch_size, shuffle=True, seed=seed, bucket=bucket)
    R = target_index.shape[0]
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_loss = torch.full((R,), float("inf"))
    best_epoch = torch.zeros(R, dtype=torch.long)
    waited = torch.zeros(R, dtype=torch.long)
    result = FitResult(best_state=best_state, best_epoch=best_epoch)
    for epoch in range(max_epochs):
        if hasattr(loader.batch_sampler, "set_epoch"):
            loader.batch_sampler.set_epoch(epoch)
        train_loss = train_one_epoch(model, loader, optimizer, scale=scale, target_index=target_index, device=device)
        _, val_loss = evaluate(model, dataset, val_idx, scale=scale, target_index=target_index,
                               device=device, batch_size=batch_size)
        improved = val_loss < best_loss
        model.merge_replicas(best_state, improved)
        best_loss = torch.where(improved, val_loss, best_loss)
        best_epoch[improved] = epoch
        waited = torch.where(improved, torch.zeros_like(waited), waited + 1)
        result.train_loss.append(train_loss.cpu().tolist())
        result.val_loss.append(val_loss.tolist())
        if log_path is not None:  # one JSON line per epoch, next to the checkpoints
            with open(log_path, "a") as f:
                f.write(json.dumps({"epoch": epoch, "train_loss": result.train_loss[-1],
                                    "val_loss": result.val_loss[-1], "time_s": round(time.time() - start, 2)}) + "\n")
        if bool((waited >= patience).all()):
            break
    model.load_state_dict(best_state)
    result.seconds = time.time() - start
    return result
