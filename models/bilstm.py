"""BiLSTM regressors of the paper, on raw AU frames or on token ids (random or GloVe embedding).

    x -> [embedding] -> dropout 0.4 -> BiLSTM(hidden 32) -> [last fwd state ; last bwd state]
      -> Linear(64) + ReLU -> dropout 0.2 -> Linear(n_outputs)

Replicas: one module can hold R independent copies of the network (R restarts and/or R targets)
so that they train as one model on a GPU, where one small LSTM leaves the device idle. Replica r
owns the r-th block of every layer: LSTM weights are block-diagonal (off-block entries start at
zero and their gradients are masked, so they stay zero and no replica sees another), the head
weights carry an explicit replica axis. Replica r is exactly a plain R = 1 model initialised with
seed `seeds[r]`: `replica_state(r)` extracts it, `load_replica` writes one in.

Each factory registers with its config dataclass (train.py's section of the same name) and takes
those options plus `**_context`: what the runner knows about the inputs (input_dim, vocab_size,
vectors); each takes what it needs. Config keys are checked by the schema before they get here.

Variable lengths: the two directions are two unidirectional LSTMs. The backward one reads each
sequence reversed within its own length, and each direction's state is read at position
`length - 1`, so padding never reaches a state that is used. This is exact, and on the CPU about
10x faster than a PackedSequence (which stays available with `pack=True`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from models.registry import register_model
from utils.config import at_least, between


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a padded batch (B, T, ...) within its length; padding stays put."""
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device)
    idx = lengths.to(x.device)[:, None] - 1 - t[None, :]       # (B, T)
    idx = torch.where(idx >= 0, idx, t[None, :])
    idx = idx.reshape(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class BiLSTMRegressor(nn.Module):
    def __init__(self, *, input_dim: int | None = None, vocab_size: int | None = None,
                 embed_dim: int | None = None, embedding_init: torch.Tensor | None = None,
                 freeze_embedding: bool = False, hidden: int = 32, head: int = 64,
                 input_dropout: float = 0.4, head_dropout: float = 0.2, n_outputs: int = 1,
                 replicas: int = 1, seeds: list[int] | None = None, pack: bool = False):
        super().__init__()
        if embedding_init is not None:
            vocab_size, embed_dim = embedding_init.shape
        if (input_dim is None) == (vocab_size is None):
            raise ValueError("give exactly one of input_dim (frames) or vocab_size (tokens)")
        R = replicas
        seeds = list(range(R)) if seeds is None else list(seeds)
        if len(seeds) != R:
            raise ValueError(f"{R} replicas need {R} seeds, got {len(seeds)}")
        self.kw = dict(input_dim=input_dim, vocab_size=vocab_size, embed_dim=embed_dim, hidden=hidden,
                       head=head, input_dropout=input_dropout, head_dropout=head_dropout,
                       n_outputs=n_outputs, pack=pack)  # what an R = 1 copy needs (see replica_state)
        self.replicas, self.hidden, self.pack, self.seeds = R, hidden, pack, seeds
        self.is_tokens = vocab_size is not None
        D = embed_dim if self.is_tokens else input_dim  # input size seen by one replica
        self.D = D
        if self.is_tokens:
            self.embedding = nn.Parameter(torch.empty(vocab_size, R * D), requires_grad=not freeze_embedding)
        self.drop_in = nn.Dropout(input_dropout)
        self.fwd = nn.LSTM(R * D, R * hidden, batch_first=True)
        self.bwd = nn.LSTM(R * D, R * hidden, batch_first=True)
        self.w1 = nn.Parameter(torch.empty(R, head, 2 * hidden))
        self.b1 = nn.Parameter(torch.empty(R, head))
        self.drop_head = nn.Dropout(head_dropout)
        self.w2 = nn.Parameter(torch.empty(R, n_outputs, head))
        self.b2 = nn.Parameter(torch.empty(R, n_outputs))
        self._owner: dict[str, torch.Tensor] | None = None
        with torch.no_grad():
            if R == 1:
                self._init_single(torch.Generator().manual_seed(seeds[0]), embedding_init)
            else:
                for p in self.parameters():
                    p.zero_()
                for r, seed in enumerate(seeds):
                    single = BiLSTMRegressor(**self.kw, seeds=[seed], embedding_init=embedding_init)
                    self.load_replica(r, single.state_dict())

    def _init_single(self, gen: torch.Generator, embedding_init: torch.Tensor | None) -> None:
        """The initialisation of one plain model (PyTorch's defaults for LSTM, Linear, Embedding)."""
        def uniform_(p, bound):
            p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)
        for lstm in (self.fwd, self.bwd):
            for p in lstm.parameters():
                uniform_(p, 1 / math.sqrt(self.hidden))
        for w, b in ((self.w1, self.b1), (self.w2, self.b2)):
            bound = 1 / math.sqrt(w.shape[-1])
            uniform_(w, bound)
            uniform_(b, bound)
        if self.is_tokens:
            if embedding_init is not None:
                self.embedding.copy_(embedding_init)
            else:
                self.embedding.copy_(torch.randn(self.embedding.shape, generator=gen))

    # ---- forward -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: (B, T) int64 tokens or (B, T, input_dim) frames; lengths (B,) -> (B, R, n_outputs)."""
        if self.is_tokens:
            x = F.embedding(x, self.embedding)                             # (B, T, R*D)
        else:
            x = repeat(x, "b t d -> b t (r d)", r=self.replicas)           # own dropout per replica
        x = self.drop_in(x)
        h_fwd = self._last_state(self.fwd, x, lengths)                     # (B, R*hidden)
        h_bwd = self._last_state(self.bwd, reverse_padded(x, lengths), lengths)
        h = rearrange(torch.stack([h_fwd, h_bwd]), "d b (r h) -> b r (d h)", r=self.replicas)
        z = torch.relu(torch.einsum("brk,rok->bro", h, self.w1) + self.b1)  # (B, R, head)
        z = self.drop_head(z)
        return torch.einsum("brk,rok->bro", z, self.w2) + self.b2          # (B, R, n_outputs)

    def _last_state(self, lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.pack:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (h_n, _) = lstm(packed)  # h_n comes back in the batch's original order
            return h_n[0]
        out, _ = lstm(x)                                                   # (B, T, R*hidden)
        last = (lengths.to(x.device) - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])
        return out.gather(1, last)[:, 0]

    # ---- replicas ------------------------------------------------------------------------
    def replica_owner(self) -> dict[str, torch.Tensor]:
        """Per parameter, an int16 tensor of its shape: the replica owning each entry, -1 off-block.
        Cached, and kept on the parameters' device (the model may have moved since)."""
        device = self.w1.device
        if self._owner is None or next(iter(self._owner.values())).device != device:
            R, h, D = self.replicas, self.hidden, self.D
            owner = {}
            for name, p in self.named_parameters():
                if name == "embedding":
                    o = (torch.arange(R * D) // D).expand(p.shape[0], -1)
                elif name.startswith(("fwd.", "bwd.")):
                    unit = torch.arange(4 * R * h) % (R * h) // h              # gates i, f, g, o stacked
                    if ".weight" in name:
                        col = torch.arange(p.shape[1]) // (D if "_ih_" in name else h)
                        o = torch.where(unit[:, None] == col[None, :], unit[:, None], -1)
                    else:
                        o = unit
                else:  # head: replica axis first
                    o = torch.arange(R).view(R, *([1] * (p.dim() - 1))).expand(p.shape)
                owner[name] = o.to(torch.int16).contiguous().to(device)
            self._owner = owner
        return self._owner

    def mask_grads(self) -> None:
        """Zero the gradients of off-block LSTM entries, so replicas never mix."""
        if self.replicas == 1:
            return
        owner = self.replica_owner()
        for name, p in self.named_parameters():
            if p.grad is not None and name.startswith(("fwd.weight", "bwd.weight")):
                p.grad.mul_(owner[name] >= 0)

    def replica_state(self, r: int) -> dict[str, torch.Tensor]:
        """The plain R = 1 state dict of replica r (loads into `BiLSTMRegressor(**kw)`)."""
        if self.replicas == 1:
            return {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        single = {k: v.shape for k, v in BiLSTMRegressor(**self.kw).state_dict().items()}
        owner, state = self.replica_owner(), self.state_dict()
        return {k: state[k][owner[k] == r].view(shape).cpu().clone() for k, shape in single.items()}

    @torch.no_grad()
    def load_replica(self, r: int, single_state: dict[str, torch.Tensor]) -> None:
        owner, state = self.replica_owner(), self.state_dict()
        for k, v in single_state.items():
            state[k][owner[k] == r] = v.to(state[k]).flatten()

    @torch.no_grad()
    def merge_replicas(self, into: dict[str, torch.Tensor], which: torch.Tensor) -> None:
        """Copy this model's current entries of the replicas where `which` (R,) bool into `into`."""
        state = self.state_dict()
        if self.replicas == 1:
            if bool(which[0]):
                for k, v in state.items():
                    into[k].copy_(v)
            return
        keep = torch.cat([which.new_zeros(1), which.to(torch.bool)])  # index 0 = off-block (-1)
        for k, owner in self.replica_owner().items():
            sel = keep.to(owner.device)[owner.long() + 1]
            into[k].copy_(torch.where(sel, state[k], into[k]))


@dataclass
class BiLSTMConfig:
    hidden: int = 32
    head: int = 64
    input_dropout: float = 0.4
    head_dropout: float = 0.2  # released code; the paper does not mention it
    pack: bool = False         # PackedSequence instead of the (exact, faster on CPU) reversal
    # checked by train.py (utils.config.check_ranges) before a run directory is written
    RANGES: ClassVar[dict] = {"hidden": at_least(1), "head": at_least(1), "input_dropout": between(0, 0.99),
                              "head_dropout": between(0, 0.99)}


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


def _common(hidden, head, input_dropout, head_dropout, pack, n_outputs, replicas, seeds):
    return dict(hidden=hidden, head=head, input_dropout=input_dropout, head_dropout=head_dropout,
                pack=pack, n_outputs=n_outputs, replicas=replicas, seeds=seeds)


@register_model("bilstm_au", config=BiLSTMConfig, inputs="frames", kind="sequence")
def bilstm_au(*, input_dim: int = 17, hidden: int = 32, head: int = 64, input_dropout: float = 0.4,
              head_dropout: float = 0.2, pack: bool = False, n_outputs: int = 1, replicas: int = 1,
              seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    return BiLSTMRegressor(input_dim=input_dim,
                           **_common(hidden, head, input_dropout, head_dropout, pack, n_outputs, replicas, seeds))


@register_model("bilstm_tokens", config=TokensConfig, inputs="tokens", kind="sequence")
def bilstm_tokens(*, vocab_size: int, embed_dim: int = 50, hidden: int = 32, head: int = 64,
                  input_dropout: float = 0.4, head_dropout: float = 0.2, pack: bool = False,
                  freeze: bool = False, n_outputs: int = 1, replicas: int = 1,
                  seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    return BiLSTMRegressor(vocab_size=vocab_size, embed_dim=embed_dim, freeze_embedding=freeze,
                           **_common(hidden, head, input_dropout, head_dropout, pack, n_outputs, replicas, seeds))


@register_model("bilstm_glove", config=BiLSTMGloveConfig, inputs="embeddings", kind="sequence")
def bilstm_glove(*, vectors: torch.Tensor, freeze: bool = False, hidden: int = 32, head: int = 64,
                 input_dropout: float = 0.4, head_dropout: float = 0.2, pack: bool = False, n_outputs: int = 1,
                 replicas: int = 1, seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    """`vectors` (V, d): the pretrained token vectors (W + W~), read by the runner for the config's `d`."""
    return BiLSTMRegressor(embedding_init=vectors, freeze_embedding=freeze,
                           **_common(hidden, head, input_dropout, head_dropout, pack, n_outputs, replicas, seeds))
