"""The block-diagonal BiLSTM that batched restarts used before issue 11, kept only as the
benchmark's reference (bench/bench_lstm.py): R replicas packed into one nn.LSTM of R*hidden units
whose weight matrices are block-diagonal (off-block entries zero, their gradients masked).
Its memory grows with R^2 (the 98 %-zero blocks at R = 50, d = 200); models/bilstm.py replaced it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from models.bilstm import reverse_padded


class BlockDiagonalBiLSTM(nn.Module):
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
                    single = BlockDiagonalBiLSTM(**self.kw, seeds=[seed], embedding_init=embedding_init)
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
        """The plain R = 1 state dict of replica r (loads into `BlockDiagonalBiLSTM(**kw)`)."""
        if self.replicas == 1:
            return {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        single = {k: v.shape for k, v in BlockDiagonalBiLSTM(**self.kw).state_dict().items()}
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
