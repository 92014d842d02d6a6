"""BiLSTM regressors of the paper, on raw AU frames or on token ids (random or GloVe embedding).

    x -> [embedding] -> dropout 0.4 -> BiLSTM(hidden 32) -> [last fwd state ; last bwd state]
      -> Linear(64) + ReLU -> dropout 0.2 -> Linear(n_outputs)

Replicas: one module holds R independent copies of the network (R restarts and/or R targets) on
a leading axis of every parameter, so that they train as one model where one small LSTM leaves
the device idle. Replica r is exactly the plain R = 1 model initialised with seed `seeds[r]`
(`replica_state(r)` extracts it, `load_replica` writes one in), and its dropout masks depend only
on that seed (models/grouped_lstm.py), so how replicas are grouped never changes a result.

The LSTM runs one of two ways (`lstm=`, same numbers up to float rounding):
  - `grouped`: all replicas and both directions in one batched matrix product per time step;
  - `fused`: one library LSTM call (cuDNN, oneDNN) per replica and direction;
  - `auto`: the faster on the device (bench/bench_lstm.py, BENCHMARKS.md).

Variable lengths: the backward direction reads each sequence reversed within its own length, and
each direction's state is read at position `length - 1`, so padding never reaches a state that
is used (exact, and cheaper than packing).

Each factory registers with its config dataclass (train.py's section of the same name) and takes
those options plus `**_context`: what the runner knows about the inputs (input_dim, vocab_size,
vectors); each takes what it needs. Config keys are checked by the schema before they get here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models.grouped_lstm import fused_lstm, grouped_lstm, replica_dropout
from models.registry import register_model
from utils.config import at_least, between, one_of
from utils.seeds import seed_for

LSTM_IMPLS = ("auto", "grouped", "fused")
# auto, per device type: the faster implementation measured in BENCHMARKS.md (bench/bench_lstm.py)
AUTO_LSTM = {"cpu": "fused", "cuda": "grouped"}


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Reverse each sequence of a padded batch within its length along time axis `dim` (the batch
    axis is dim - 1); padding stays put."""
    B, T = x.shape[dim - 1], x.shape[dim]
    t = torch.arange(T, device=x.device)
    idx = lengths.to(x.device)[:, None] - 1 - t[None, :]       # (B, T)
    idx = torch.where(idx >= 0, idx, t[None, :])
    shape = [1] * x.dim()
    shape[dim - 1], shape[dim] = B, T
    return x.gather(dim, idx.view(shape).expand_as(x))


class BiLSTMRegressor(nn.Module):
    def __init__(self, *, input_dim: int | None = None, vocab_size: int | None = None,
                 embed_dim: int | None = None, embedding_init: torch.Tensor | None = None,
                 freeze_embedding: bool = False, hidden: int = 32, head: int = 64,
                 input_dropout: float = 0.4, head_dropout: float = 0.2, n_outputs: int = 1,
                 replicas: int = 1, seeds: list[int] | None = None, lstm: str = "auto"):
        super().__init__()
        if embedding_init is not None:
            vocab_size, embed_dim = embedding_init.shape
        if (input_dim is None) == (vocab_size is None):
            raise ValueError("give exactly one of input_dim (frames) or vocab_size (tokens)")
        if lstm not in LSTM_IMPLS:
            raise ValueError(f"lstm={lstm!r}: expected one of {LSTM_IMPLS}")
        R, H = replicas, hidden
        seeds = list(range(R)) if seeds is None else list(seeds)
        if len(seeds) != R:
            raise ValueError(f"{R} replicas need {R} seeds, got {len(seeds)}")
        self.kw = dict(input_dim=input_dim, vocab_size=vocab_size, embed_dim=embed_dim, hidden=hidden,
                       head=head, input_dropout=input_dropout, head_dropout=head_dropout,
                       n_outputs=n_outputs, lstm=lstm)  # what an R = 1 copy needs (see replica_state)
        self.replicas, self.hidden, self.lstm, self.seeds = R, hidden, lstm, seeds
        self.input_dropout, self.head_dropout = input_dropout, head_dropout
        self.is_tokens = vocab_size is not None
        D = embed_dim if self.is_tokens else input_dim  # input size seen by one replica
        if self.is_tokens:
            self.embedding = nn.Parameter(torch.empty(R, vocab_size, D), requires_grad=not freeze_embedding)
        # LSTM weights: replica, direction (forward, backward), then nn.LSTM's layout (gates i, f, g, o)
        self.w_ih = nn.Parameter(torch.empty(R, 2, 4 * H, D))
        self.w_hh = nn.Parameter(torch.empty(R, 2, 4 * H, H))
        self.b_ih = nn.Parameter(torch.empty(R, 2, 4 * H))
        self.b_hh = nn.Parameter(torch.empty(R, 2, 4 * H))
        self.w1 = nn.Parameter(torch.empty(R, head, 2 * H))
        self.b1 = nn.Parameter(torch.empty(R, head))
        self.w2 = nn.Parameter(torch.empty(R, n_outputs, head))
        self.b2 = nn.Parameter(torch.empty(R, n_outputs))
        # dropout: one key per replica, and a count of training forward passes (the masks' clock)
        self.register_buffer("dropout_keys", torch.tensor([seed_for(s, 1) for s in seeds], dtype=torch.int64),
                             persistent=False)
        self.draws = 0
        with torch.no_grad():
            for r, seed in enumerate(seeds):
                self._init_replica(r, torch.Generator().manual_seed(seed), embedding_init)

    def _init_replica(self, r: int, gen: torch.Generator, embedding_init: torch.Tensor | None) -> None:
        """One plain model's initialisation (PyTorch's defaults for LSTM, Linear, Embedding)."""
        def uniform_(p, bound):
            p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)
        for d in range(2):  # the order of the draws of a forward then a backward nn.LSTM
            for p in (self.w_ih, self.w_hh, self.b_ih, self.b_hh):
                uniform_(p[r, d], 1 / math.sqrt(self.hidden))
        for w, b in ((self.w1, self.b1), (self.w2, self.b2)):
            bound = 1 / math.sqrt(w.shape[-1])
            uniform_(w[r], bound)
            uniform_(b[r], bound)
        if self.is_tokens:
            if embedding_init is not None:
                self.embedding[r].copy_(embedding_init)
            else:
                self.embedding[r].copy_(torch.randn(self.embedding.shape[1:], generator=gen))

    # ---- forward -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: (B, T) int64 tokens or (B, T, input_dim) frames; lengths (B,) -> (B, R, n_outputs).
        Pass `lengths` on x's device: moving it here would wait for the device."""
        R, B = self.replicas, x.shape[0]
        lengths = lengths.to(x.device, non_blocking=True)
        if self.is_tokens:
            V = self.embedding.shape[1]
            ids = x[None] + (torch.arange(R, device=x.device) * V)[:, None, None]     # (R, B, T)
            x = F.embedding(ids, self.embedding.flatten(0, 1))                      # (R, B, T, D)
        else:
            x = x[None].expand(R, *x.shape)                                         # (R, B, T, D)
        counter = self.draws
        if self.training:
            self.draws += 1
            x = replica_dropout(x, self.dropout_keys, p=self.input_dropout, counter=counter, layer=0)
        states = self._lstm_states(x, lengths)                                      # (T, R*2, B, H)
        last = states[lengths - 1, :, torch.arange(B, device=x.device)]             # (B, R*2, H)
        h = last.reshape(B, R, 2 * self.hidden)                                     # [fwd ; bwd] per replica
        z = torch.relu(torch.einsum("brk,rok->bro", h, self.w1) + self.b1)          # (B, R, head)
        if self.training:
            z = replica_dropout(z, self.dropout_keys, p=self.head_dropout, counter=counter, layer=1, dim=1)
        return torch.einsum("brk,rok->bro", z, self.w2) + self.b2                   # (B, R, n_outputs)

    def _impl(self, device: torch.device) -> str:
        return AUTO_LSTM.get(device.type, "grouped") if self.lstm == "auto" else self.lstm

    def _lstm_states(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (R, B, T, D) -> hidden states (T, R*2, B, H), group 2r + d = replica r, direction d."""
        R, B, T, D = x.shape
        H4 = 4 * self.hidden
        if self._impl(x.device) == "fused":
            both = torch.stack([x, reverse_padded(x, lengths, dim=2)], 1).flatten(0, 1)  # (R*2, B, T, D)
            return fused_lstm(both, self.w_ih.flatten(0, 1), self.w_hh.flatten(0, 1),
                              self.b_ih.flatten(0, 1), self.b_hh.flatten(0, 1))
        # input projection of every step, both directions at once; the reversal commutes with it
        bias = (self.b_ih + self.b_hh).reshape(R, 1, 2 * H4)
        proj = torch.baddbmm(bias, x.reshape(R, B * T, D), self.w_ih.reshape(R, 2 * H4, D).transpose(1, 2))
        proj = proj.view(R, B, T, 2, H4)
        fwd, bwd = proj[..., 0, :], reverse_padded(proj[..., 1, :], lengths, dim=2)   # (R, B, T, 4H) each
        steps = torch.stack([fwd, bwd], 1).permute(3, 0, 1, 2, 4).reshape(T, R * 2, B, H4)
        return grouped_lstm(steps, self.w_hh.flatten(0, 1))

    # ---- replicas ------------------------------------------------------------------------
    def replica_state(self, r: int) -> dict[str, torch.Tensor]:
        """The plain R = 1 state dict of replica r (loads into `BiLSTMRegressor(**kw)`), on the CPU."""
        return {k: v[r:r + 1].detach().cpu().clone() for k, v in self.state_dict().items()}

    @torch.no_grad()
    def load_replica(self, r: int, single_state: dict[str, torch.Tensor]) -> None:
        for k, v in self.state_dict().items():
            v[r:r + 1].copy_(single_state[k])

    @torch.no_grad()
    def merge_replicas(self, into: dict[str, torch.Tensor], which: torch.Tensor) -> None:
        """Copy this model's current entries of the replicas where `which` (R,) bool into `into`."""
        for k, v in self.state_dict().items():
            sel = which.to(device=v.device, dtype=torch.bool).view(-1, *([1] * (v.dim() - 1)))
            into[k].copy_(torch.where(sel, v, into[k]))


@dataclass
class BiLSTMConfig:
    hidden: int = 32
    head: int = 64
    input_dropout: float = 0.4
    head_dropout: float = 0.2  # released code; the paper does not mention it
    lstm: str = "auto"         # grouped | fused | auto (the faster on the device; BENCHMARKS.md)
    # checked by train.py (utils.config.check_ranges) before a run directory is written
    RANGES: ClassVar[dict] = {"hidden": at_least(1), "head": at_least(1), "input_dropout": between(0, 0.99),
                              "head_dropout": between(0, 0.99), "lstm": one_of(*LSTM_IMPLS)}


@dataclass
class TokensConfig(BiLSTMConfig):
    embed_dim: int = 50
    freeze: bool = False
    RANGES: ClassVar[dict] = {**BiLSTMConfig.RANGES, "embed_dim": at_least(1)}


@dataclass
class BiLSTMGloveConfig(BiLSTMConfig):
    d: int = 50                # reads embeddings_d{d}.pt from the task's `embeddings` folder
    freeze: bool = False       # released code: the embedding is fine-tuned
    RANGES: ClassVar[dict] = {**BiLSTMConfig.RANGES, "d": at_least(1)}


def _common(hidden, head, input_dropout, head_dropout, lstm, n_outputs, replicas, seeds):
    return dict(hidden=hidden, head=head, input_dropout=input_dropout, head_dropout=head_dropout,
                lstm=lstm, n_outputs=n_outputs, replicas=replicas, seeds=seeds)


@register_model("bilstm_au", config=BiLSTMConfig, inputs="frames", kind="sequence")
def bilstm_au(*, input_dim: int = 17, hidden: int = 32, head: int = 64, input_dropout: float = 0.4,
              head_dropout: float = 0.2, lstm: str = "auto", n_outputs: int = 1, replicas: int = 1,
              seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    return BiLSTMRegressor(input_dim=input_dim,
                           **_common(hidden, head, input_dropout, head_dropout, lstm, n_outputs, replicas, seeds))


@register_model("bilstm_tokens", config=TokensConfig, inputs="tokens", kind="sequence")
def bilstm_tokens(*, vocab_size: int, embed_dim: int = 50, hidden: int = 32, head: int = 64,
                  input_dropout: float = 0.4, head_dropout: float = 0.2, lstm: str = "auto",
                  freeze: bool = False, n_outputs: int = 1, replicas: int = 1,
                  seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    return BiLSTMRegressor(vocab_size=vocab_size, embed_dim=embed_dim, freeze_embedding=freeze,
                           **_common(hidden, head, input_dropout, head_dropout, lstm, n_outputs, replicas, seeds))


@register_model("bilstm_glove", config=BiLSTMGloveConfig, inputs="embeddings", kind="sequence")
def bilstm_glove(*, vectors: torch.Tensor, freeze: bool = False, hidden: int = 32, head: int = 64,
                 input_dropout: float = 0.4, head_dropout: float = 0.2, lstm: str = "auto", n_outputs: int = 1,
                 replicas: int = 1, seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    """`vectors` (V, d): the pretrained token vectors (W + W~), read by the runner for the config's `d`."""
    return BiLSTMRegressor(embedding_init=vectors, freeze_embedding=freeze,
                           **_common(hidden, head, input_dropout, head_dropout, lstm, n_outputs, replicas, seeds))


@dataclass
class BiLSTMFaceConfig(BiLSTMConfig):
    # the face-feature corpus already holds exactly the time steps to read (faces/face_features.py
    # crops and strides as the task's max_len / stride would), so the dataset reads it whole
    full_sequence: bool = True


@register_model("bilstm_face", config=BiLSTMFaceConfig, inputs="face_features", kind="sequence")
def bilstm_face(*, input_dim: int = 16, hidden: int = 32, head: int = 64, input_dropout: float = 0.4,
                head_dropout: float = 0.2, lstm: str = "auto", n_outputs: int = 1, replicas: int = 1,
                seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    """The "LSTM + face features" row: the BiLSTM on per-frame embeddings of rendered faces."""
    return BiLSTMRegressor(input_dim=input_dim,
                           **_common(hidden, head, input_dropout, head_dropout, lstm, n_outputs, replicas, seeds))
