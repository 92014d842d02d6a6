"""Fit GloVe to a co-occurrence matrix: L-BFGS to the optimum, or the references' AdaGrad; resumable.

The objective is the paper's (losses/glove.py), plus an optional L2 penalty `l2/2 (|W|^2 + |W~|^2)`
(biases free). The optimizer, by name (`optimizer=`; `auto`: lbfgs with converge=true, else mittens):
  - `lbfgs`    full-batch L-BFGS with a strong-Wolfe line search (torch.optim.LBFGS); one epoch is
               one L-BFGS iteration (up to 25 evaluations of J). Chosen by measurement
               (BENCHMARKS.md): it reaches 1.05 x the optimum in a fraction of the time AdaGrad needs.
  - `adam`     full-batch (or mini-batch) Adam at `lr`.
  - `mittens`  AdaGrad as the released code's `mittens` trainer: accumulator a starts at 0.1;
               a += g^2; p -= lr * g / sqrt(a) (no epsilon) = torch.optim.Adagrad(lr, 0.1, eps=0).
  - `stanford` AdaGrad as Stanford `glove`: a starts at 1.0; u = lr * clip(g, +-grad_clip);
               p -= u / sqrt(a); then a += u^2. Stanford applies it per nonzero and asynchronously;
               `batch_size=B` applies it per shuffled batch of B nonzeros.
Full batch (`batch_size=0`): when V*V <= `dense_max_entries` J is evaluated on the dense V x V grid
(W W~^T is one matmul; f = 0 off the nonzeros) with the gradient written out by hand; otherwise
over the nonzeros, `chunk_nonzeros` at a time, by autograd. The epoch's loss is J before the step
(full batch) or the sum of the batch losses; `final_loss` is J at the returned parameters.

Stopping: with `converge=true` the fit stops once J's mean relative decrease per epoch over the last
`window` epochs is <= `tol` (or J reaches 0 in floating point), `epochs` being the maximum; the
result says whether the rule was met. With `converge=false` it runs exactly `epochs` epochs (the
released code's fixed budget) and still reports the relative change at the end.

Tokens whose row and column of X are empty (they never occur) have nothing to learn: their
parameters are set to 0 (gradients never reach them, so no optimizer moves them; the other
tokens' trajectories are unchanged) and `learned` marks them False.

Resumable: every `checkpoint_every` epochs the model, optimizer state, epoch and loss history are
written atomically; `fit` continues from that file (and refuses one of another dimension,
vocabulary fingerprint or configuration; a damaged one is said in one line and the dimension
starts again).
"""
from __future__ import annotations

import dataclasses
import sys
import time
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

OPTIMIZERS = ("auto", "lbfgs", "adam", "mittens", "stanford")
ADAGRADS = ("mittens", "stanford")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# keys that may differ between a checkpoint and the run that resumes it
_RESUMABLE_CHANGES = ("epochs", "tol", "window", "checkpoint_every", "log_every")


@dataclass
class GloveConfig:
    optimizer: str = "auto"           # auto (lbfgs if converge, else mittens) | lbfgs | adam | mittens | stanford
    converge: bool = False            # true: to the optimum, stopping on the rule below (epochs = the maximum);
                                      # false: exactly `epochs` (the default, measured best downstream: BENCHMARKS.md)
    epochs: int = 1000                # the maximum (converge) or the exact number of epochs (released code: 1000)
    tol: float = 1e-5                 # converged: mean relative decrease of J per epoch over `window` epochs
    window: int = 10                  # epochs the relative change is measured over
    lr: float = 0.05                  # AdaGrad / Adam step size (lbfgs: its line search sets the step)
    l2: float = 0.0                   # penalty l2/2 (|W|^2 + |W~|^2) added to J (0: the paper's objective)
    history: int = 20                 # lbfgs: the number of curvature pairs kept
    x_max: float = 100.0
    alpha: float = 0.75
    init: str = "mittens"             # mittens | stanford (see models/glove.py)
    batch_size: int = 0               # 0: full batch (all nonzeros per step); else nonzeros per step (not lbfgs)
    grad_clip: float = 100.0          # optimizer=stanford only
    seed: int = 0
    dtype: str = "float32"            # float32 | float64
    checkpoint_every: int = 100       # epochs
    log_every: int = 100              # epochs between loss read-outs (TensorBoard, console)
    dense_max_entries: int = 16_777_216  # full batch on a dense V x V grid up to this many entries
    chunk_nonzeros: int = 65_536      # nonzeros per chunk on the sparse full-batch path (memory: ~ 3 x chunk x d floats)


def check_config(cfg, prefix: str = "glove") -> None:
    """Raise ConfigError naming the key of a value the trainer cannot use."""
    choices = {"optimizer": OPTIMIZERS, "init": INITS, "dtype": tuple(DTYPES)}
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{prefix}.{key} must be one of {allowed}, got {getattr(cfg, key)!r}")
    positive = ("epochs", "lr", "x_max", "alpha", "checkpoint_every", "log_every", "chunk_nonzeros",
                "grad_clip", "window", "history")
    for key in positive:
        if not getattr(cfg, key) > 0:
            raise ConfigError(f"{prefix}.{key} must be > 0, got {getattr(cfg, key)}")
    for key in ("batch_size", "tol", "dense_max_entries", "l2"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{prefix}.{key} must be >= 0, got {getattr(cfg, key)}")
    if optimizer_of(cfg) == "lbfgs" and cfg.batch_size:
        raise ConfigError(f"{prefix}.batch_size must be 0 with {prefix}.optimizer=lbfgs (a full-batch method), "
                          f"got {cfg.batch_size}")


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


def optimizer_of(cfg) -> str:
    """`auto`: L-BFGS when asked to converge (what reaches the optimum fastest, BENCHMARKS.md), else
    the released code's mittens AdaGrad for its fixed number of epochs."""
    if cfg.optimizer != "auto":
        return cfg.optimizer
    return "lbfgs" if cfg.converge else "mittens"


def make_optimizer(params, cfg) -> torch.optim.Optimizer:
    name = optimizer_of(cfg)
    if name == "lbfgs":
        # tolerances 0: the stopping rule is ours (relative change of J), applied between epochs
        return torch.optim.LBFGS(params, lr=1.0, max_iter=1, max_eval=25, history_size=cfg.history,
                                 tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    return GloveAdaGrad(params, lr=cfg.lr, variant=name, grad_clip=cfg.grad_clip)


def relative_change(losses: list[float], window: int) -> float:
    """Mean relative decrease of J per epoch over the last `window` epochs (inf before there are enough)."""
    if len(losses) <= window:
        return float("inf")
    before, now = losses[-window - 1], losses[-1]
    if now <= 0.0:
        return 0.0 if before <= 0.0 else float("inf")
    return (before - now) / (window * now)


@dataclass
class GloveResult:
    model: GloVe
    losses: list[float]     # one per epoch run (J, plus the L2 penalty when l2 > 0)
    epochs: int             # epochs run in all (including those before a resumption)
    converged: bool         # the stopping rule was met (converge=true), before `epochs`
    resumed_from: int       # epoch the last `fit` started from (0: from scratch)
    final_loss: float       # J (the paper's objective, no penalty) at the returned parameters
    rel_change: float       # mean relative decrease per epoch over the last `window` epochs
    evaluations: int        # evaluations of J and its gradient (lbfgs: several per epoch)
    seconds: float          # wall time of this fit (without the time before a resumption)


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
        seen = torch.zeros(V, dtype=torch.bool, device=self.device)
        seen[rows] = True
        seen[cols] = True
        self.learned = seen.cpu()                                           # (V,) tokens with a nonzero
        self.model = GloVe(vocab_size=V, dim=dim, init=cfg.init, seed=cfg.seed, dtype=dtype).to(self.device)
        with torch.no_grad():
            for p in self.model.parameters():
                p[~seen] = 0.0                                              # nothing to learn: not random either
        self.optimizer = optimizer_of(cfg)
        self.opt = make_optimizer(list(self.model.parameters()), cfg)
        self.epoch, self.losses, self.converged, self.evaluations = 0, [], False, 0

    @property
    def n_parameters(self) -> int:
        """Free parameters of the learned tokens: 2dV + 2V."""
        return 2 * (self.dim + 1) * int(self.learned.sum())

    # --- the objective --------------------------------------------------------------------------
    def _penalty(self) -> torch.Tensor:
        W, C = self.model.W, self.model.W_tilde
        return 0.5 * self.cfg.l2 * (W.pow(2).sum() + C.pow(2).sum())

    def objective(self, *, grad: bool, penalised: bool = True) -> torch.Tensor:
        """J (+ the L2 penalty), full batch; with grad=True also the parameters' .grad. A 0-d tensor."""
        model, l2 = self.model, self.cfg.l2 if penalised else 0.0
        self.evaluations += grad
        if self.dense:
            with torch.no_grad():
                total, g = glove_loss_and_grad(model.dense(), self.L, self.F)    # g: (V, V)
                if grad:
                    model.set_dense_grad(g)
                if l2 > 0:
                    total = total + self._penalty()
                    if grad:
                        model.W.grad.add_(model.W, alpha=l2)
                        model.W_tilde.grad.add_(model.W_tilde, alpha=l2)
            return total
        if grad:
            self.opt.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=self.F.dtype, device=self.device)
        with torch.set_grad_enabled(grad):
            for start in range(0, self.n_nonzero, self.cfg.chunk_nonzeros):
                part = slice(start, start + self.cfg.chunk_nonzeros)
                loss = glove_loss(model(self.rows[part], self.cols[part]), self.L[part], self.F[part])
                if grad:
                    loss.backward()                                          # gradients add up over chunks
                total += loss.detach()
            if l2 > 0:
                penalty = self._penalty()
                if grad:
                    penalty.backward()
                total += penalty.detach()
        return total

    def paper_objective(self) -> float:
        """J without the penalty, at the current parameters (one evaluation, no gradient)."""
        return float(self.objective(grad=False, penalised=False))

    # --- one epoch --------------------------------------------------------------------------------
    def run_epoch(self) -> torch.Tensor:
        """One epoch; returns its loss as a 0-d tensor (no device sync on the AdaGrad/Adam paths)."""
        if self.optimizer == "lbfgs":
            first = []

            def closure():
                loss = self.objective(grad=True)
                first.append(loss)
                return loss
            self.opt.step(closure)
            total = first[0].detach()                                        # J before the step
        elif self.full_batch:
            total = self.objective(grad=True)
            self.opt.step()
        else:
            model, opt = self.model, self.opt
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n_nonzero, generator=g).to(self.device)
            total = torch.zeros((), dtype=self.F.dtype, device=self.device)
            for start in range(0, self.n_nonzero, self.cfg.batch_size):
                batch = order[start:start + self.cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = glove_loss(model(self.rows[batch], self.cols[batch]), self.L[batch], self.F[batch])
                if self.cfg.l2 > 0:   # the penalty spread over the batches of an epoch
                    loss = loss + self._penalty() * (batch.numel() / self.n_nonzero)
                loss.backward()
                opt.step()
                self.evaluations += 1
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
                 "converged": self.converged, "evaluations": self.evaluations, "meta": self._meta()}
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
        self.evaluations = state.get("evaluations", 0)

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
        start, started = self.epoch, time.perf_counter()
        writer = None
        if tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            # purge_step drops the events a killed run logged after its last checkpoint
            writer = SummaryWriter(str(tb_dir), purge_step=start if start > 0 else None)
        pending: list[torch.Tensor] = []
        # the stopping rule needs J every epoch (L-BFGS reads it anyway); else read it out in blocks
        every_epoch = cfg.converge or self.optimizer == "lbfgs"
        try:
            while self.epoch < cfg.epochs and not self.converged:
                pending.append(self.run_epoch())
                done = self.epoch == cfg.epochs
                logged = self.epoch % cfg.log_every == 0
                if every_epoch or done or logged or self.epoch % cfg.checkpoint_every == 0:
                    self._flush(pending, writer, tag)
                    pending = []
                    if not torch.isfinite(torch.tensor(self.losses[-1])):
                        raise FloatingPointError(f"{tag}: J became {self.losses[-1]} at epoch {self.epoch}; "
                                                 f"lower glove.lr or use glove.optimizer=lbfgs")
                    if cfg.converge:
                        self.converged = relative_change(self.losses, cfg.window) <= cfg.tol
                    if log and (logged or done):
                        log(self._progress(tag, start, started))
                if checkpoint is not None and (done or self.converged or self.epoch % cfg.checkpoint_every == 0):
                    self.save_checkpoint(checkpoint)
                if on_epoch is not None:
                    on_epoch(self.epoch)
        finally:
            if writer is not None:
                writer.close()
        rel = relative_change(self.losses, cfg.window)
        if log and self.converged:
            log(f"{tag}: converged at epoch {self.epoch} (relative change of J per epoch {rel:.2g} <= {cfg.tol})")
        return GloveResult(model=self.model, losses=list(self.losses), epochs=self.epoch, converged=self.converged,
                           resumed_from=start, final_loss=self.paper_objective(), rel_change=rel,
                           evaluations=self.evaluations, seconds=time.perf_counter() - started)

    def _progress(self, tag: str, start: int, started: float) -> str:
        cfg, J = self.cfg, self.losses[-1]
        elapsed = time.perf_counter() - started
        rate = elapsed / max(self.epoch - start, 1)
        rel = relative_change(self.losses, cfg.window)
        eta = f"ETA {rate * (cfg.epochs - self.epoch):.0f} s" + (" at most" if cfg.converge else "")
        return (f"{tag}: epoch {self.epoch}/{cfg.epochs}  J {J:.6g} ({J / self.n_nonzero:.3g} per nonzero)  "
                f"rel. change {rel:.2g}/epoch  {elapsed:.1f} s, {eta}")

    def _flush(self, pending: list[torch.Tensor], writer, tag: str) -> None:
        values = torch.stack(pending).tolist()               # note: the one device sync per read-out
        first = self.epoch - len(values) + 1
        for i, value in enumerate(values):
            if writer is not None:
                writer.add_scalar(f"{tag}/loss", value, first + i)
        self.losses.extend(values)



NORM_BLOWUP = 10.0   # warn when the largest vector norm exceeds this many times the median


def diagnose(trainer: GloveTrainer, result: GloveResult) -> dict:
    """The per-dimension figures embed.py reports (console, summary.json), with warnings in words."""
    cfg, nnz = trainer.cfg, trainer.n_nonzero
    n_learned = int(trainer.learned.sum())
    norms = result.model.vectors()[trainer.learned.to(trainer.device)].norm(dim=1).double().cpu()
    d, V = trainer.dim, n_learned
    identifiable = d * (2 * V - d) + 2 * V - 1 if d <= V else V * V + 2 * V - 1   # rank-d V x V + biases
    out = {"J": result.final_loss, "J_per_nonzero": result.final_loss / nnz, "rel_change": result.rel_change,
           "epochs": result.epochs, "evaluations": result.evaluations, "seconds": result.seconds,
           "optimizer": trainer.optimizer, "converge": bool(cfg.converge), "stopping_rule_met": result.converged,
           "nonzeros": nnz, "parameters": trainer.n_parameters, "identifiable_parameters": identifiable,
           "over_parameterised": trainer.n_parameters >= nnz,
           "norm_median": float(norms.median()) if V else float("nan"),
           "norm_max": float(norms.max()) if V else float("nan"), "warnings": []}
    warn = out["warnings"].append
    if result.rel_change > cfg.tol:
        what = "the stopping rule was not met" if cfg.converge else "a fixed budget (converge=false)"
        warn(f"not converged: {what}; after {result.epochs} epochs J still falls by {result.rel_change:.2g} "
             f"of itself per epoch (tol {cfg.tol:g})")
    if out["over_parameterised"]:
        warn(f"over-parameterised: 2dV + 2V = {trainer.n_parameters:,} parameters for {nnz:,} nonzeros "
             f"({identifiable:,} identifiable); the fit can approach J = 0 and the data do not determine the "
             f"vectors: use a smaller d, a larger vocabulary and corpus, or glove.l2")
    if V and out["norm_max"] > NORM_BLOWUP * out["norm_median"]:
        warn(f"vector norms blow up: max {out['norm_max']:.3g} > {NORM_BLOWUP:g} x median {out['norm_median']:.3g}")
    return out
