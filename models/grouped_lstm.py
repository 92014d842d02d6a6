"""Building blocks for R independent replicas of one small network held on a leading axis.

- `grouped_lstm`: G unidirectional LSTMs with their own weights, each on its own input, run as
  one batched matrix product per time step (the input projection of every step is one product
  before the loop). The arithmetic is nn.LSTM's (gates i, f, g, o; both biases), so group g
  equals nn.LSTM with group g's weights. Memory is linear in G.
- `fused_lstm`: the same contract, one library LSTM call (cuDNN on CUDA, oneDNN on CPU) per group.
- `replica_dropout`: dropout whose mask for replica r depends only on r's seed, a call counter
  and the element's position inside r's slice. Replicas grouped into one model draw exactly the
  masks they draw alone, on any device (the mask is an integer hash, not a generator's stream).
"""
from __future__ import annotations

import torch

_M32 = 0xFFFFFFFF
_MUL = 0x45D9F3B  # < 2^31: products of 32-bit values stay below 2^63, so int64 arithmetic is exact


def mix32(x):
    """A 32-bit integer hash (two multiply-xorshift rounds) of int64 values in [0, 2^32): a tensor
    or a Python int (the same numbers)."""
    x = ((x >> 16) ^ x) * _MUL & _M32
    x = ((x >> 16) ^ x) * _MUL & _M32
    return (x >> 16) ^ x


def replica_keep_mask(keys: torch.Tensor, shape: tuple[int, ...], *, p: float, counter: int,
                      layer: int) -> torch.Tensor:
    """(R, *shape) bool: which elements replica r keeps. keys (R,) int64 in [0, 2^32)."""
    n = 1
    for s in shape:
        n *= s
    salt = mix32((counter * 0x9E3779B1 + layer * 0x85EBCA77) & _M32)      # a Python int: no copy to the device
    base = mix32(keys ^ salt)                                              # (R,)
    position = mix32(torch.arange(n, device=keys.device, dtype=torch.int64))  # (n,), shared by replicas
    u = mix32(base[:, None] ^ position[None, :])                           # (R, n) uniform on [0, 2^32)
    return (u >= int(p * 2 ** 32)).view(len(keys), *shape)


def replica_dropout(x: torch.Tensor, keys: torch.Tensor, *, p: float, counter: int, layer: int,
                    dim: int = 0) -> torch.Tensor:
    """Inverted dropout of x whose axis `dim` is the replica axis; keys (R,) one per replica."""
    if p <= 0:
        return x
    xr = x.movedim(dim, 0)
    keep = replica_keep_mask(keys, tuple(xr.shape[1:]), p=p, counter=counter, layer=layer)
    return (xr * keep * (1.0 / (1.0 - p))).movedim(0, dim)


def grouped_lstm(x_proj: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
    """x_proj (T, G, B, 4H): every step's input projection plus both biases; w_hh (G, 4H, H).
    -> hidden states (T, G, B, H), from zero initial states."""
    T, G, B, H4 = x_proj.shape
    H = H4 // 4
    w_t = w_hh.transpose(1, 2)                                             # (G, H, 4H)
    h = x_proj.new_zeros(G, B, H)
    c = x_proj.new_zeros(G, B, H)
    out = []
    for t in range(T):
        gates = torch.baddbmm(x_proj[t], h, w_t)                           # (G, B, 4H)
        sig = gates.sigmoid()                                              # i, f, (g), o
        c = torch.addcmul(sig[..., H:2 * H] * c, sig[..., :H], gates[..., 2 * H:3 * H].tanh())
        h = sig[..., 3 * H:] * c.tanh()
        out.append(h)
    return torch.stack(out)


def fused_lstm(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
               b_hh: torch.Tensor) -> torch.Tensor:
    """x (G, B, T, D), weights (G, 4H, D) (G, 4H, H) (G, 4H) (G, 4H) -> hidden states (T, G, B, H):
    one library LSTM call per group (what nn.LSTM runs)."""
    G, B = x.shape[:2]
    H = w_hh.shape[2]
    h0 = x.new_zeros(1, B, H)
    out = [torch.lstm(x[g], (h0, h0), [w_ih[g], w_hh[g], b_ih[g], b_hh[g]], True, 1, 0.0, False, False, True)[0]
           for g in range(G)]                                              # each (B, T, H)
    return torch.stack(out).permute(2, 0, 1, 3)
