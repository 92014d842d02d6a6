"""Co-occurrence build and GloVe epoch time, ours against a plain NumPy reference, in one run.

    .venv/bin/python bench/bench_embed.py                      # the paper's shape: 5.3M tokens, V = 1003
    .venv/bin/python bench/bench_embed.py --device cuda        # GPU: also times 1000 GloVe epochs
    .venv/bin/python bench/bench_embed.py --tokens 500000      # smaller

Tokens (--source): `synth` (default) tokenises the synthetic generator's corpus with its states at
the paper's published 1000 centres (bench/synth_frames.py) by those centres and counts (the paper's
<unk> rule: count <= 500 or distance > 1.75), so V = 1003 and the co-occurrence has the real
sparsity; without the published folder, or with `--source zipf`: sequences of geometric length (mean
35 frames, about the paper's 5.3M frames / 150K videos) between <start> and <end>, clusters drawn
from a Zipf-like law with some persistence, ~2 % <unk>.
References: co-occurrence with `np.add.at` per offset (the plain NumPy way); GloVe as the
`mittens` package trains it (dense V x V full batch, float64, AdaGrad with accumulators from 0.1).
Prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from glove.cooccurrence import cooccurrence  # noqa: E402
from glove.trainer import GloveConfig, GloveTrainer  # noqa: E402
from utils.artifacts import load_torch  # noqa: E402
from utils.device import pick_device  # noqa: E402


def make_tokens(n_tokens: int, vocab: int, mean_length: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    lengths = []
    total = 0
    while total < n_tokens:                      # frames per video, + <start> and <end>
        n = int(rng.geometric(1.0 / mean_length)) + 2
        lengths.append(min(n, n_tokens - total) if n_tokens - total >= 2 else 2)
        total += lengths[-1]
    lengths = np.array(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    k = vocab - 3
    p = 1.0 / np.arange(1, k + 1) ** 1.1
    clusters = rng.choice(k, size=offsets[-1], p=p / p.sum()) + 3
    stay = rng.random(offsets[-1]) < 0.5         # expressions persist over a few frames
    idx = np.where(stay, 0, np.arange(offsets[-1]))
    np.maximum.accumulate(idx, out=idx)
    tokens = clusters[idx]
    tokens[rng.random(offsets[-1]) < 0.02] = 0
    tokens[offsets[:-1]] = 1
    tokens[offsets[1:] - 1] = 2
    return torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(offsets.astype(np.int64))


def synth_tokens(n_frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Tokens of the generator's frames at the published vocabulary, by the published centres, or None."""
    from synth_frames import generator_frames, vocab_dir
    from vocab.assign import assign
    from vocab.tokens import frame_tokens, with_boundaries
    got = generator_frames(n_frames, seed=seed, workers=os.cpu_count() or 1)
    if got is None:
        return None
    saved = load_torch(vocab_dir() / "centroids.pt", "vocabulary")
    frames, offsets = torch.from_numpy(got[0]), torch.from_numpy(got[1])
    labels, d2 = assign(frames, saved["centroids"])
    tokens = frame_tokens(labels, d2.clamp_min(0).sqrt(), saved["counts"], min_count=501, max_dist=1.75)
    return with_boundaries(tokens, offsets)


def numpy_cooccurrence(tokens: np.ndarray, offsets: np.ndarray, vocab: int, window: int) -> np.ndarray:
    seq = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    X = np.zeros((vocab, vocab))
    for d in range(1, window + 1):
        same = seq[:-d] == seq[d:]
        np.add.at(X, (tokens[:-d][same], tokens[d:][same]), 1.0)
    return X + X.T


def numpy_glove_epochs(X: np.ndarray, dim: int, epochs: int, lr=0.05, x_max=100.0, alpha=0.75) -> float:
    """mittens-style dense full-batch AdaGrad; returns seconds per epoch."""
    rng = np.random.default_rng(0)
    V = X.shape[0]
    W, C = (rng.uniform(-1, 1, (V, dim)) * np.sqrt(6 / (V + dim)) for _ in range(2))
    bw, bc = (rng.uniform(-1, 1, (V, 1)) * np.sqrt(6 / (V + 1)) for _ in range(2))
    weights = (np.minimum(X, x_max) / x_max) ** alpha
    log_x = np.where(X > 0, np.log(np.where(X > 0, X, 1.0)), 0.0)
    params = [W, C, bw, bc]
    acc = [np.full_like(p, 0.1) for p in params]
    start = time.perf_counter()
    for _ in range(epochs):
        diffs = W @ C.T + bw + bc.T - log_x
        wd = weights * diffs
        _error = (0.5 * weights * diffs ** 2).sum()
        grads = [wd @ C, wd.T @ W, wd.sum(1, keepdims=True), wd.sum(0, keepdims=True).T]
        for p, a, g in zip(params, acc, grads):
            a += g ** 2
            p -= lr * g / np.sqrt(a)
    return (time.perf_counter() - start) / epochs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_of(repeats: int, fn, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=5_300_000)
    ap.add_argument("--vocab", type=int, default=1003)
    ap.add_argument("--mean-length", type=float, default=35.0)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--dims", type=int, nargs="+", default=[25, 200])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=0, help="GloVe epochs timed (default: 1000 on CUDA, 30 on CPU)")
    ap.add_argument("--ref-epochs", type=int, default=10, help="epochs of the NumPy GloVe reference")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--source", choices=["synth", "zipf"], default="synth",
                    help="synth: the generator at the published vocabulary (fallback: zipf)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    epochs = args.epochs or (1000 if device.type == "cuda" else 30)
    got = synth_tokens(args.tokens, seed=0) if args.source == "synth" else None
    if got is not None:
        tokens, offsets = got
        args.vocab = 1000 + 3
        print("tokens: the generator at the published vocabulary, tokenised by its centres (bench/synth_frames.py)")
    else:
        tokens, offsets = make_tokens(args.tokens, args.vocab, args.mean_length, seed=0)
    what = (f"{tokens.numel():,} tokens in {offsets.numel() - 1:,} sequences, V = {args.vocab}, window {args.window}; "
            f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'}, "
            f"{torch.get_num_threads()} torch threads); torch {torch.__version__}, numpy {np.__version__}")
    print(what)
    rows = []

    # --- co-occurrence ------------------------------------------------------------------------
    t_dev, o_dev = tokens.to(device), offsets.to(device)
    cooccurrence(t_dev, o_dev, vocab_size=args.vocab, window=args.window)               # warm-up
    ours = best_of(args.repeats, lambda: cooccurrence(t_dev, o_dev, vocab_size=args.vocab, window=args.window), device)
    X = cooccurrence(t_dev, o_dev, vocab_size=args.vocab, window=args.window).cpu()
    line = ["co-occurrence build", f"{ours:.3f} s", "", ""]
    if not args.no_reference:
        tok_np, off_np = tokens.numpy(), offsets.numpy()
        ref = best_of(args.repeats, lambda: numpy_cooccurrence(tok_np, off_np, args.vocab, args.window), torch.device("cpu"))
        same = np.array_equal(numpy_cooccurrence(tok_np, off_np, args.vocab, args.window), X.to_dense().numpy())
        line[2:] = [f"{ref:.3f} s", f"{ref / ours:.1f}x" + ("" if same else " (MISMATCH)")]
    rows.append(line)
    print(f"co-occurrence: {X._nnz():,} nonzeros ({X._nnz() / args.vocab ** 2:.1%})")

    # --- GloVe epochs -------------------------------------------------------------------------
    dense_X = X.to_dense().numpy()
    for dim in args.dims:
        for dtype in ("float32", "float64"):
            cfg = GloveConfig(epochs=epochs, dtype=dtype, optimizer="mittens", converge=False)
            trainer = GloveTrainer(X, dim=dim, cfg=cfg, device=device)
            for _ in range(3):
                trainer.run_epoch()                                                     # warm-up
            sync(device)
            start = time.perf_counter()
            for _ in range(epochs):
                trainer.run_epoch()
            sync(device)
            per_epoch = (time.perf_counter() - start) / epochs
            line = [f"GloVe d={dim} {dtype}, per epoch ({epochs} timed)", f"{1e3 * per_epoch:.2f} ms", "", ""]
            if not args.no_reference and dtype == "float64":
                ref = numpy_glove_epochs(dense_X, dim, args.ref_epochs)
                line[2:] = [f"{1e3 * ref:.2f} ms", f"{ref / per_epoch:.1f}x"]
            rows.append(line)
            if dim == max(args.dims) and dtype == "float32":
                how = "measured above" if epochs == 1000 else f"projected from {epochs}"
                rows.append([f"GloVe d={dim} float32, 1000 epochs ({how})",
                             f"{1000 * per_epoch:.2f} s", "", ""])

    print()
    print("| measurement | ours | NumPy reference | speed-up |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\n{what}")


if __name__ == "__main__":
    main()
