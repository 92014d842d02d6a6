"""Fit GloVe to a co-occurrence matrix with AdaGrad: full batch or shuffled mini-batches, resumable.

One epoch is one pass over the nonzeros of X:
  - `batch_size=0` (default): one AdaGrad step on the gradient of the whole objective, as the
    released code's `mittens` trainer. When V*V <= `dense_max_entries` the objective is evaluated
    on the dense V x V grid (W W~^T is one matmul; f = 0 off the nonzeros, so this is the sum over
    nonzeros), with the gradient written out by hand (tested against autograd); otherwise over the
    nonzeros, `chunk_nonzeros` at a time, gradients accumulated by autograd.
  - `batch_size=B`: the nonzeros shuffled (seeded by (seed, epoch)) and one step per B of them.
The epoch's loss is the objective before the step (full batch) or the sum of the batch losses.

AdaGrad, by name (`adagrad=`):
  - `mittens`  accumulator a starts at 0.1; a += g^2; p -= lr * g / sqrt(a)  (no epsilon).
               Equals torch.optim.Adagrad(lr, initial_accumulator_value=0.1, eps=0).
  - `stanford` accumulator a starts at 1.0; u = lr * clip(g, +-grad_clip); p -= u / sqrt(a); then
               a += u^2 (the update uses the accumulator before this step's gradient, which is
               accumulated already scaled by lr). Stanford `glove` applies this per nonzero and
               asynchronously across threads; here it is applied per batch.

Resumable: every `checkpoint_every` epochs the model, the optimizer state, the epoch and the loss
history are written atomically; `fit` continues from that file when it exists (and refuses one
written for another dimension, vocabulary fingerprint or configuration; a damaged one is said in
one line and the dimension starts again).
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from losses.glove import glove_loss, glove_loss_and_grad, glove_weight, log_counts
from models.glove import INITS, GloVe
from utils.config import ConfigError
from utils.artifacts import ArtifactError, check_fields, load_torch
from utils.io import save_torch
from utils.runs import RunDirError

ADAGRADS = ("mittens", "stanford")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# keys that may differ between a checkpoint and the run that resumes it
_RESUMABLE_CHANGES = ("epochs", "tol", "checkpoint_every", "log_every")


@dataclass
class GloveConfig:
    epochs: int = 1000                # the released code: mittens, 1000 iterations
    lr: float = 0.05
    x_max: float = 100.0
    alpha: float = 0.75
    adagrad: str = "mittens"          # mittens | stanford (see models/glove_trainer.py)
    init: str = "mittens"             # mittens | stanford (see models/glove.py)
    batch_size: int = 0               # 0: full batch (all nonzeros per step); else nonzeros per step
    tol: float = 0.0                  # stop once the relative change of the epoch loss is below tol (0: never)
    grad_clip: float = 100.0          # adagrad=stanford only
    seed: int = 0
    dtype: str = "float32"            # float32 | float64
    checkpoint_every: int = 100       # epochs
    log_every: int = 10               # epochs between loss read-outs (TensorBoard, console)
    dense_max_entries: int = 16_777_216  # full batch on a dense V x V grid up to this many entries
    chunk_nonzeros: int = 65_536      # nonzeros per chunk on the sparse full-batch path (memory: ~ 3 x chunk x d floats)


def check_config(cfg, prefix: str = "glove") -> None:
    """Raise ConfigError naming the key of a value the trainer cannot use."""
    choices = {"adagrad": ADAGRADS, "init": INITS, "dtype": tuple(DTYPES)}
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{prefix}.{key} must be one of {allowed}, got {getattr(cfg, key)!r}")
    positive = ("epochs", "lr", "x_max", "alpha", "checkpoint_every", "log_every", "chunk_nonzeros", "grad_clip")
    for key in positive:
        if not getattr(cfg, key) > 0:
            raise ConfigError(f"{prefix}.{key} must be > 0, got {getattr(cfg, key)}")
    for key in ("batch_size", "tol", "dense_max_entries"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{prefix}.{key} must be >= 0, got {getattr(cfg, key)}")


class GloveAdaGrad(torch.optim.Optimizer):
    def __init__(self, params, *, lr: float, variant: str = "mittens", grad_clip: float = 100.0):
        if variant not in ADAGRADS:
            raise ValueError(f"adagrad variant must be one of {ADAGRADS}, got {variant!r}")
        super().__init__(params, dict(lr=lr, variant=variant, grad_clip=grad_clip))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, mittens, clip = group["lr"], group["variant"] == "mittens", group["grad_clip"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "sum" not in state:
                    state["sum"] = torch.full_like(p, 0.1 if mittens else 1.0)
                acc, g = state["sum"], p.grad
                if mittens:
                    acc.addcmul_(g, g)
                    p.addcdiv_(g, acc.sqrt(), value=-lr)
                else:
                    u = g.clamp(-clip, clip).mul_(lr)
                    p.addcdiv_(u, acc.sqrt(), value=-1.0)
                    acc.addcmul_(u, u)


@dataclass
class GloveResult:
    model: GloVe
    losses: list[float]     # one per epoch run
    epochs: int             # epochs run in all (including those before a resumption)
    converged: bool         # stopped by `tol` before `epochs`
    resumed_from: int       # epoch the last `fit` started from (0: from scratch)


def _as_dict(cfg) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dataclasses.asdict(cfg)


def read_checkpoint(path: str | Path) -> dict:
    """The one reader of checkpoints/glove_d{d}.pt (what `save_checkpoint` writes)."""
    return check_fields(load_torch(path, "GloVe checkpoint"), path, "GloVe checkpoint", {
        "model": dict, "optimizer": dict, "epoch": int, "losses": list, "converged": bool, "meta": dict})


class GloveTrainer:
    """Holds the model, the optimizer and the weighted targets of one (matrix, dim) fit."""

    def __init__(self, matrix: torch.Tensor, *, dim: int, cfg, device: torch.device | str = "cpu",
                 fingerprint: str = ""):
        check_config(cfg)
        self.cfg, self.dim, self.device, self.fingerprint = cfg, dim, torch.device(device), fingerprint
        matrix = matrix.coalesce()
        V = matrix.shape[0]
        dtype = DTYPES[cfg.dtype]
        rows, cols = matrix.indices().to(self.device)
        x = matrix.values().to(self.device, torch.float64)                  # (nnz,) counts
        weight = glove_weight(x, x_max=cfg.x_max, alpha=cfg.alpha)          # computed in float64, then cast
        log_x = log_counts(x)
        self.full_batch = cfg.batch_size == 0
        self.dense = self.full_batch and V * V <= cfg.dense_max_entries
        if self.dense:
            grid = lambda v: torch.zeros(V, V, dtype=torch.float64, device=self.device).index_put_((rows, cols), v)
            self.F, self.L = grid(weight).to(dtype), grid(log_x).to(dtype)  # (V, V) each
        else:
            self.rows, self.cols = rows, cols                               # (nnz,) each
            self.F, self.L = weight.to(dtype), log_x.to(dtype)              # (nnz,) each
        self.n_nonzero = int(x.numel())
        self.model = GloVe(vocab_size=V, dim=dim, init=cfg.init, seed=cfg.seed, dtype=dtype).to(self.device)
        self.opt = GloveAdaGrad(self.model.parameters(), lr=cfg.lr, variant=cfg.adagrad, grad_clip=cfg.grad_clip)
        self.epoch, self.losses, self.converged = 0, [], False

    # --- one epoch --------------------------------------------------------------------------------
    def run_epoch(self) -> torch.Tensor:
        """One pass over the nonzeros; returns the epoch loss as a 0-d tensor (no device sync)."""
        model, opt = self.model, self.opt
        if self.dense:
            with torch.no_grad():
                total, grad = glove_loss_and_grad(model.dense(), self.L, self.F)   # grad: (V, V)
                model.set_dense_grad(grad)
            opt.step()
        elif self.full_batch:
            opt.zero_grad(set_to_none=True)
            total = torch.zeros((), dtype=self.F.dtype, device=self.device)
            for start in range(0, self.n_nonzero, self.cfg.chunk_nonzeros):
                part = slice(start, start + self.cfg.chunk_nonzeros)
                loss = glove_loss(model(self.rows[part], self.cols[part]), self.L[part], self.F[part])
                loss.backward()                                              # gradients add up over chunks
                total += loss.detach()
            opt.step()
        else:
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n_nonzero, generator=g).to(self.device)
            total = torch.zeros((), dtype=self.F.dtype, device=self.device)
            for start in range(0, self.n_nonzero, self.cfg.batch_size):
                batch = order[start:start + self.cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = glove_loss(model(self.rows[batch], self.cols[batch]), self.L[batch], self.F[batch])
                loss.backward()
                opt.step()
                total += loss.detach()
        self.epoch += 1
        return total

    # --- checkpoints ------------------------------------------------------------------------------
    def _meta(self) -> dict:
        cfg = {k: v for k, v in _as_dict(self.cfg).items() if k not in _RESUMABLE_CHANGES}
        return {"dim": self.dim, "vocab_size": self.model.vocab_size, "fingerprint": self.fingerprint, "config": cfg}

    def save_checkpoint(self, path: str | Path) -> None:
        state = {"model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                 "optimizer": self.opt.state_dict(), "epoch": self.epoch, "losses": self.losses,
                 "converged": self.converged, "meta": self._meta()}
        save_torch(state, path)

    def load_checkpoint(self, path: str | Path) -> None:
        state = read_checkpoint(path)
        mine, theirs = self._meta(), state["meta"]
        if theirs != mine:
            diff = sorted(k for k in mine if theirs.get(k) != mine[k])
            raise RunDirError(f"checkpoint {path} was written by another run (differs in {diff}); "
                             f"delete it to start this dimension again")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.epoch, self.losses, self.converged = state["epoch"], list(state["losses"]), state["converged"]

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self, *, checkpoint: str | Path | None = None, tb_dir: str | Path | None = None,
            log: Callable[[str], None] | None = print, on_epoch: Callable[[int], None] | None = None,
            tag: str = "glove") -> GloveResult:
        cfg = self.cfg
        if checkpoint is not None and Path(checkpoint).exists():
            try:
                self.load_checkpoint(checkpoint)
                if log:
                    log(f"{tag}: resuming from {checkpoint} at epoch {self.epoch}")
            except ArtifactError as err:     # a damaged checkpoint heals: this dimension starts again
                print(f"{err}; starting {tag} from epoch 0", file=sys.stderr)
                Path(checkpoint).unlink()
        start = self.epoch
        writer = None
        if tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            # purge_step drops the events a killed run logged after its last checkpoint
            writer = SummaryWriter(str(tb_dir), purge_step=start if start > 0 else None)
        pending: list[torch.Tensor] = []
        try:
            while self.epoch < cfg.epochs and not self.converged:
                pending.append(self.run_epoch())
                done = self.epoch == cfg.epochs
                if cfg.tol > 0 or done or self.epoch % cfg.log_every == 0 or self.epoch % cfg.checkpoint_every == 0:
                    self._flush(pending, writer, tag)
                    pending = []
                    if log and (done or self.epoch % cfg.log_every == 0):
                        log(f"{tag}: epoch {self.epoch}/{cfg.epochs} loss {self.losses[-1]:.6g}")
                if cfg.tol > 0 and len(self.losses) >= 2:
                    before, now = self.losses[-2], self.losses[-1]
                    self.converged = abs(before - now) <= cfg.tol * max(abs(before), 1e-300)
                if checkpoint is not None and (done or self.converged or self.epoch % cfg.checkpoint_every == 0):
                    self.save_checkpoint(checkpoint)
                if on_epoch is not None:
                    on_epoch(self.epoch)
        finally:
            if writer is not None:
                writer.close()
        if log and self.converged:
            log(f"{tag}: converged at epoch {self.epoch} (relative loss change <= {cfg.tol})")
        return GloveResult(model=self.model, losses=list(self.losses), epochs=self.epoch,
                           converged=self.converged, resumed_from=start)

    def _flush(self, pending: list[torch.Tensor], writer, tag: str) -> None:
        values = torch.stack(pending).tolist()               # note: the one device sync per read-out
        first = self.epoch - len(values) + 1
        for i, value in enumerate(values):
            if writer is not None:
                writer.add_scalar(f"{tag}/loss", value, first + i)
        self.losses.extend(values)
