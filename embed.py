"""python embed.py tokens=DIR out=DIR — the co-occurrence of the tokens, then GloVe for each dimension.

Reads DIR/tokens.pt (and vocab.tsv, centroids.pt beside it) as cluster.py writes them. Writes to out/:
    config.yaml                  the resolved config
    cooccurrence.pt              {"matrix": sparse COO (V, V) float64, "fingerprint", ...}
    cooccurrence.bin, vocab.txt  the same matrix for the Stanford `glove` tool (CREC, 1-based ids)
    vectors_d{d}.txt             GloVe text format, W + W~
    embeddings_d{d}.pt           {"W", "W_tilde" (V, d), "b", "b_tilde" (V,), "tokens", "fingerprint", ...}
    tb/d{d}/                     TensorBoard: the loss curve and the projector view (token, count, dominant AUs)
    summary.json                 written last: sizes, losses, timings
Run it again with the same config to resume: the co-occurrence and finished dimensions are reused,
an interrupted dimension continues from checkpoints/glove_d{d}.pt. Adding dimensions to `dims` is allowed.

    torchrun --nproc_per_node=G embed.py tokens=DIR out=DIR     # G processes (NCCL on GPUs, gloo on CPU)

Under torchrun each rank counts the co-occurrences of its share of the sequences and the counts are
summed over ranks, exactly (the matrix equals a single process's bit for bit; data/cooccurrence.py).
GloVe then trains on rank 0 alone and the other ranks exit (rather than wait at a barrier, where
NCCL would time out after 10 minutes). The rule is by size: the corpus-sized work is the counting;
GloVe's size is the V x V matrix whatever the corpus. At the paper's V = 1003 (~1M nonzeros) an
epoch is two (V x V)(V x d) products on a dense grid (146 ms at d = 200 on 2 CPU threads,
bench/bench_embed.py), a job for one device; splitting it would add a gradient all-reduce to
every epoch. Rank 0 writes every artifact.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from glove.cooccurrence import CooccurrenceConfig, check_config as check_cooccurrence, cooccurrence
from glove.files import (read_cooccurrence, read_embedding_file, write_crec, write_projector, write_vectors_txt,
                         write_vocab_txt)
from vocab.token_set import TokenFileError, load_tokens
from glove.trainer import GloveConfig, GloveTrainer, check_config as check_glove
from utils.cli import run_script
from utils.config import CONFIG_DIR, ConfigError, load_config
from utils.distributed import broadcast_object, close_distributed, init_distributed
from utils import names
from utils.artifacts import ArtifactError, MismatchError
from utils.io import fingerprint, save_json, save_torch
from utils.runs import RunDirError, open_run_dir

DEFAULTS = CONFIG_DIR / "embed.yaml"


@dataclass
class EmbedConfig:
    tokens: str = ""                      # folder holding tokens.pt (or the file itself); required
    out: str = "runs/embed"
    device: str = "auto"
    dims: list[int] = field(default_factory=lambda: [25, 50, 100, 200])
    stanford_unk_name: str = "<raw_unk>"  # the name of <unk> in vocab.txt only (see data/glove_files.py)
    cooccurrence: CooccurrenceConfig = field(default_factory=CooccurrenceConfig)
    glove: GloveConfig = field(default_factory=GloveConfig)


def check_config(cfg) -> None:
    if not cfg.tokens:
        raise ConfigError("tokens: required — the folder holding tokens.pt (tokens=DIR)")
    if not cfg.dims or any(d < 1 for d in cfg.dims) or len(set(cfg.dims)) != len(cfg.dims):
        raise ConfigError(f"dims: must be distinct positive integers, got {list(cfg.dims)}")
    if not cfg.stanford_unk_name or any(c.isspace() for c in cfg.stanford_unk_name):
        raise ConfigError(f"stanford_unk_name: must be one word, got {cfg.stanford_unk_name!r}")
    check_cooccurrence(cfg.cooccurrence)
    check_glove(cfg.glove)


def reusable(read, path: Path, **kw) -> dict | None:
    """This run's own earlier artifact, read by its checked reader; a damaged one is said in one line
    and made again (None). One made from other tokens is an error (never mixed with this run's)."""
    if not path.exists():
        return None
    try:
        return read(path, **kw)
    except MismatchError as err:
        raise RunDirError(str(err)) from None
    except ArtifactError as err:
        print(f"{err}; computing it again", file=sys.stderr)
        path.unlink()
        return None


def main(argv: list[str]) -> None:
    cfg = load_config(EmbedConfig, argv, DEFAULTS)
    check_config(cfg)
    ctx = init_distributed(cfg.device)              # under torchrun: this process's rank; else rank 0 of 1
    device = ctx.device
    out = open_run_dir(cfg.out, cfg, ignore=("device", "dims")) if ctx.is_main else Path(cfg.out)
    vocab = load_tokens(cfg.tokens)                 # every rank: tokens are small next to the frames
    V = vocab.vocab_size
    stamp = {"fingerprint": vocab.fingerprint, "tokens_fingerprint": fingerprint(vocab.tokens, vocab.offsets)}
    counts = vocab.counts                                                      # (V,) int64
    if ctx.is_main:
        print(f"tokens: {vocab.path} — {vocab.tokens.numel()} tokens, {vocab.offsets.numel() - 1} sequences, "
              f"V = {V}, vocabulary {vocab.fingerprint}; device {device}, {ctx.world_size} rank(s)")

    # 1. co-occurrence: each rank counts its share of the sequences (reused when this run already built it)
    cooc_file = out / names.COOCCURRENCE
    saved = reusable(read_cooccurrence, cooc_file, stamp=stamp) if ctx.is_main else None
    reuse = broadcast_object(saved is not None, ctx)
    if not reuse:
        c = cfg.cooccurrence
        tokens, offsets = vocab.shard(ctx, device)                             # this rank's sequences
        start = time.perf_counter()
        matrix = cooccurrence(tokens, offsets, vocab_size=V, window=c.window, weighting=c.weighting, unk=c.unk,
                              unk_id=vocab.specials["<unk>"], chunk_tokens=c.chunk_tokens,
                              dense_max_entries=c.dense_max_entries, ctx=ctx).cpu()
        cooc_seconds = time.perf_counter() - start                             # .cpu() waited for the device
    close_distributed(ctx)                          # GloVe trains on rank 0 alone (see above)
    if not ctx.is_main:
        return
    if reuse:
        matrix, cooc_seconds = saved["matrix"], saved["seconds"]
        print(f"co-occurrence: reusing {cooc_file}")
    else:
        write_crec(matrix, out / names.CREC_FILE)
        write_vocab_txt(vocab.names, counts, out / names.GLOVE_VOCAB, unk_name=cfg.stanford_unk_name)
        save_torch({"matrix": matrix, **stamp, "vocab_size": V, "tokens": vocab.names, "seconds": cooc_seconds,
                    "ranks": ctx.world_size, **OmegaConf.to_container(c)}, cooc_file)  # written last: marks it done
    nnz = matrix._nnz()
    print(f"co-occurrence: {nnz} nonzeros ({nnz / V ** 2:.1%} of V x V), total {matrix.values().sum():.6g}, "
          f"built in {cooc_seconds:.2f} s")
    if nnz == 0:
        raise TokenFileError(f"{vocab.path}: the co-occurrence matrix is empty (no sequence has two tokens?)")

    # 2. GloVe, one dimension at a time; a finished dimension is skipped
    summary = {"vocab_size": V, "nonzeros": nnz, "cooccurrence_seconds": cooc_seconds, **stamp, "dims": {}}
    metadata = [[name, str(int(n)), aus or "-"] for name, n, aus in zip(vocab.names, counts, vocab.dominant_aus)]
    for d in cfg.dims:
        final = out / names.embeddings_file(d)
        done = reusable(read_embedding_file, final, d=d, stamp=stamp)
        if done is not None:
            print(f"d={d}: finished already ({final})")
        else:
            checkpoint = out / "checkpoints" / f"glove_d{d}.pt"
            start = time.perf_counter()
            trainer = GloveTrainer(matrix, dim=d, cfg=cfg.glove, device=device, fingerprint=vocab.fingerprint)
            result = trainer.fit(checkpoint=checkpoint, tb_dir=out / "tb" / f"d{d}", tag=f"glove_d{d}")
            seconds = time.perf_counter() - start
            model = result.model
            vectors = model.vectors().cpu()                                    # (V, d) W + W~
            write_vectors_txt(vocab.names, vectors, out / names.vectors_file(d))
            write_projector(out / "tb" / f"d{d}", vectors, metadata, tag=f"glove_d{d}", step=result.epochs)
            done = {name: getattr(model, name).detach().cpu() for name in ("W", "W_tilde", "b", "b_tilde")}
            done.update(tokens=vocab.names, **stamp, dim=d, epochs=result.epochs, converged=result.converged,
                        losses=result.losses, seconds=seconds, config=OmegaConf.to_container(cfg.glove))
            save_torch(done, final)                                            # written last: marks d done
            checkpoint.unlink(missing_ok=True)
            if not any(checkpoint.parent.iterdir()):
                checkpoint.parent.rmdir()
            print(f"d={d}: {result.epochs} epochs, loss {result.losses[-1]:.6g}, {seconds:.1f} s")
        summary["dims"][str(d)] = {"epochs": done["epochs"], "final_loss": done["losses"][-1],
                                   "converged": done["converged"], "seconds": done["seconds"]}
    save_json(summary, out / names.SUMMARY)
    print(f"embeddings in {out}")


if __name__ == "__main__":
    run_script(main, "embed.py")
