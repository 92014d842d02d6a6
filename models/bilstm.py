"""BiLSTM regressors of the paper, on raw AU frames or on token ids (random or GloVe embedding).

    x -> [embedding] -> dropout 0.4 -> BiLSTM(hidden 32) -> [last fwd state ; last bwd state]
      -> Linear(64) + ReLU -> dropout 0.2 -> Linear(n_outputs)

Replicas: one module can hold R independent copies of the network (R restarts and/or R targets)
so that they train as one model on a GPU, where one small LSTM leaves the device idle. Replica r
owns the r-th block of every layer: LSTM weights are block-diagonal (off-block entries start at
zero and their gradients are masked, so they stay zero and no replica sees another), the head
weights carry an explicit replica axis. Replica r is exactly a plain R = 1 model initialised with
seed `seeds[r]`: `replica_state(r)` extracts it, `load_replica` writes one in.

The factories take keyword options from config plus `**_context`: what the runner knows about the
inputs (input_dim, vocab_size, tokens_fingerprint, embeddings); each takes what it needs. Config keys
are checked by the schema before they get here.

Variable lengths: the two directions are two unidirectional LSTMs. The backward one reads each
sequence reversed within its own length, and each direction's state is read at position
`length - 1`, so padding never reaches a state that is used. This is exact, and on the CPU about
10x faster than a PackedSequence (which stays available with `pack=True`).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from models.registry import register_model


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


def _common(hidden, head, input_dropout, head_dropout, pack, n_outputs, replicas, seeds):
    return dict(hidden=hidden, head=head, input_dropout=input_dropout, head_dropout=head_dropout,
                pack=pack, n_outputs=n_outputs, replicas=replicas, seeds=seeds)


@register_model("bilstm_au")
def bilstm_au(*, input_dim: int = 17, hidden: int = 32, head: int = 64, input_dropout: float = 0.4,
              head_dropout: float = 0.2, pack: bool = False, n_outputs: int = 1, replicas: int = 1,
              seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    return BiLSTMRegressor(input_dim=input_dim,
                           **_common(hidden, head, input_dropout, head_dropout, pack, n_outputs, replicas, seeds))


@register_model("bilstm_tokens")
def bilstm_tokens(*, vocab_size: int, embed_dim: int = 50, hidden: int = 32, head: int = 64,
                  input_dropout: float = 0.4, head_dropout: float = 0.2, pack: bool = False,
                  freeze: bool = False, n_outputs: int = 1, replicas: int = 1,
                  seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    return BiLSTMRegressor(vocab_size=vocab_size, embed_dim=embed_dim, freeze_embedding=freeze,
                           **_common(hidden, head, input_dropout, head_dropout, pack, n_outputs, replicas, seeds))


def load_glove(path: str | Path, *, tokens_fingerprint: str, vocab_size: int) -> torch.Tensor:
    """W + W_tilde (V, d) from an `embeddings_d{d}.pt`, refusing one built on another vocabulary."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"embeddings file {path} does not exist; build it with `python embed.py`")
    emb = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in ("W", "W_tilde", "fingerprint") if k not in emb]
    if missing:
        raise ValueError(f"{path}: not an embeddings file (missing {missing})")
    if emb["fingerprint"] != tokens_fingerprint:
        raise ValueError(f"{path}: embeddings were trained on vocabulary {emb['fingerprint']}, but the tokens "
                         f"use vocabulary {tokens_fingerprint}; tokenise with the vocabulary the embeddings came from")
    vectors = (emb["W"] + emb["W_tilde"]).float()  # (V, d)
    if vectors.shape[0] != vocab_size:
        raise ValueError(f"{path}: {vectors.shape[0]} embedding rows but the tokens have vocab_size {vocab_size}")
    return vectors


@register_model("bilstm_glove")
def bilstm_glove(*, embeddings: str | Path, d: int, tokens_fingerprint: str, vocab_size: int,
                 freeze: bool = False, hidden: int = 32, head: int = 64, input_dropout: float = 0.4,
                 head_dropout: float = 0.2, pack: bool = False, n_outputs: int = 1, replicas: int = 1,
                 seeds: list[int] | None = None, **_context) -> BiLSTMRegressor:
    """`embeddings` is the directory holding `embeddings_d{d}.pt` (or that file itself)."""
    path = Path(embeddings)
    path = path / f"embeddings_d{d}.pt" if path.is_dir() or path.suffix != ".pt" else path
    vectors = load_glove(path, tokens_fingerprint=tokens_fingerprint, vocab_size=vocab_size)
    if vectors.shape[1] != d:
        raise ValueError(f"{path}: vectors have {vectors.shape[1]} dimensions, config asks for d={d}")
    return BiLSTMRegressor(embedding_init=vectors, freeze_embedding=freeze,
                           **_common(hidden, head, input_dropout, head_dropout, pack, n_outputs, replicas, seeds))


for _factory, _inputs in ((bilstm_au, "frames"), (bilstm_tokens, "tokens"), (bilstm_glove, "tokens")):
    _factory.inputs, _factory.kind = _inputs, "sequence"  # read by training/experiment.py
