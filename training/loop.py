"""The training loop of the sequence models: plain functions over a model with R replicas.

A model maps (x, lengths) to (B, R, n_outputs) and holds its R replicas on the leading axis of
every parameter (models/bilstm.py); `target_index` (R, n_outputs) says which target column each
output of each replica learns. Targets are scaled to [-1, 1] by the training fold's range
(released code); the loss is the sum over replicas of each replica's MSE, so every replica gets
exactly the gradient of its own loss.

Each replica trains exactly as it would alone. Early stopping is its own: once it has waited
`patience` epochs without improving its validation loss it is frozen (`ReplicaAdam` leaves its
parameters, moments and step count as they are), and its best state is the one of its own best
epoch. Training ends when every replica is frozen, or after `max_epochs`. Batches are the same
for every replica, and dropout masks depend on each replica's seed only, so how replicas are
grouped into models (train.parallel_restarts) changes the speed, not the results.
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
    epochs: torch.Tensor | None = None                         # (R,) epochs each replica trained

    def curve(self, r: int) -> dict[str, list[float]]:
        """Replica r's losses over the epochs it trained (what training it alone records)."""
        n = len(self.val_loss) if self.epochs is None else int(self.epochs[r])
        return {"train_loss": [e[r] for e in self.train_loss[:n]], "val_loss": [e[r] for e in self.val_loss[:n]]}


class ReplicaAdam:
    """Adam (torch.optim.Adam's arithmetic, no weight decay) over parameters whose leading axis
    is the replica, with one step count per replica. `step(active)` updates only the replicas
    where active (R,) is true: a frozen replica's parameters, moments and step count stay as
    they are, so it ends exactly where it would have stopped alone."""

    def __init__(self, params, *, replicas: int, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        if any(p.shape[0] != replicas for p in self.params):
            raise ValueError(f"every parameter needs a leading replica axis of size {replicas}")
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        device = self.params[0].device
        self.steps = torch.zeros(replicas, dtype=torch.float64, device=device)  # (R,)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        """active (R,) bool on the parameters' device; no host-device synchronisation."""
        self.steps += active
        t = self.steps.clamp(min=1)                                   # frozen-from-start replicas: no 0/0
        step_size = (self.lr / (1 - self.beta1 ** t)).float()         # (R,)
        bc2_sqrt = ((1 - self.beta2 ** t) ** 0.5).float()
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            on = active.view(shape)
            g = p.grad
            m.copy_(torch.where(on, m.lerp(g, 1 - self.beta1), m))
            v.copy_(torch.where(on, v * self.beta2 + (1 - self.beta2) * g * g, v))
            denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(self.eps)
            p.copy_(torch.where(on, p - step_size.view(shape) * m / denom, p))


def _replica_targets(batch_y: torch.Tensor, scale: TargetScale, target_index: torch.Tensor) -> torch.Tensor:
    return scale.scale(batch_y)[:, target_index]  # (B, R, n_outputs)


def _to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, lengths, y of a batch on the device, each moved once (asynchronously from pinned memory)."""
    return tuple(batch[k].to(device, non_blocking=True) for k in ("x", "lengths", "y"))


def train_one_epoch(model, loader, optimizer: ReplicaAdam, *, scale: TargetScale, target_index: torch.Tensor,
                    device: torch.device, active: torch.Tensor | None = None) -> torch.Tensor:
    """One pass over `loader`, updating the replicas where `active` (R,) bool (all when None);
    returns each replica's mean training loss (R,). Nothing in the loop waits for the device."""
    R = target_index.shape[0]
    active = torch.ones(R, dtype=torch.bool, device=device) if active is None else active.to(device)
    model.train()
    total, count = torch.zeros(R, device=device), 0
    for batch in loader:
        x, lengths, y = _to_device(batch, device)
        pred = model(x, lengths)                                              # (B, R, n_outputs)
        per_replica = ((pred - _replica_targets(y, scale, target_index)) ** 2).mean(dim=(0, 2))  # (R,)
        optimizer.zero_grad()
        per_replica.sum().backward()
        optimizer.step(active)
        total += per_replica.detach() * len(batch["y"])
        count += len(batch["y"])
    return total / max(count, 1)  # note: one CPU-GPU sync per epoch, at the caller's .tolist()


@torch.no_grad()
def evaluate(model, dataset: SequenceDataset, indices, *, scale: TargetScale, target_index: torch.Tensor,
             device: torch.device, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions (n, R, n_outputs) in label units, in the order of `indices`, and each replica's
    scaled MSE over all n items (R,)."""
    model.eval()
    indices = torch.as_tensor(list(indices), dtype=torch.long)
    preds, order = [], []
    loader = make_loader(dataset, indices.tolist(), batch_size=batch_size, shuffle=False, pin=device.type == "cuda")
    for batch in loader:
        x, lengths, _ = _to_device(batch, device)
        preds.append(model(x, lengths))
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
    """Adam on the training indices, early stopping per replica on the validation indices: a
    replica that has waited `patience` epochs without improving stops changing (module docstring)."""
    start = time.time()
    model.to(device)
    target_index = target_index.to(device)
    R = target_index.shape[0]
    optimizer = ReplicaAdam(model.parameters(), replicas=R, lr=lr)
    loader = make_loader(dataset, list(train_idx), batch_size=batch_size, shuffle=True, seed=seed, bucket=bucket,
                         pin=device.type == "cuda")
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_loss = torch.full((R,), float("inf"))
    best_epoch = torch.zeros(R, dtype=torch.long)
    waited = torch.zeros(R, dtype=torch.long)
    epochs = torch.zeros(R, dtype=torch.long)
    result = FitResult(best_state=best_state, best_epoch=best_epoch, epochs=epochs)
    for epoch in range(max_epochs):
        if hasattr(loader.batch_sampler, "set_epoch"):
            loader.batch_sampler.set_epoch(epoch)
        active = waited < patience                                           # (R,) not yet out of patience
        train_loss = train_one_epoch(model, loader, optimizer, scale=scale, target_index=target_index,
                                     device=device, active=active)
        _, val_loss = evaluate(model, dataset, val_idx, scale=scale, target_index=target_index,
                               device=device, batch_size=batch_size)
        improved = active & (val_loss < best_loss)
        model.merge_replicas(best_state, improved)
        best_loss = torch.where(improved, val_loss, best_loss)
        best_epoch[improved] = epoch
        waited = torch.where(improved, torch.zeros_like(waited), waited + active.long())
        epochs += active.long()
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
