"""The vocabulary stage: k-means over all frames (an elbow sweep over k), then one token per frame.

    python cluster.py corpus=DIR out=DIR k=1000
    python cluster.py corpus=DIR out=DIR sweep=[100,200,500,1000,2000,5000,10000]   # tokens for the knee's k
    python cluster.py corpus=DIR out=DIR sweep=[...] k=1000                          # sweep, tokens for k=1000
    python cluster.py corpus=DOWNSTREAM out=DIR vocab=VOCAB_DIR                      # reuse a vocabulary
    python cluster.py corpus=DIR out=DIR config=configs/paper/cluster.yaml           # the paper's settings

Writes to out/: config.yaml; sweep/k{k}.pt (each finished k; a re-run resumes after the last one);
elbow.csv, elbow.png (with a sweep); tb/ (TensorBoard); centroids.pt, vocab.tsv, centroids.png,
summary.json; tokens.pt last. With vocab=: tokens.pt and summary.json only, the <unk> rule using
the pretraining counts stored in the vocabulary.

    torchrun --nproc_per_node=G cluster.py corpus=DIR out=DIR k=1000    # G processes, one per GPU (or CPU)

Under torchrun each rank loads only its run of sequences of the corpus and k-means reduces over
the ranks (models/kmeans.py); the tokens of all sequences are gathered in corpus order, and rank 0
writes every artifact. Without torchrun the same code runs as one rank.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from data.openface.corpus import FrameCorpus
from vocab.tokens import (N_SPECIAL, UNK, Vocabulary, check_finite, dominant_aus, gather_tokens, load_vocabulary,
                         nearest, tokenize, write_vocab_tsv)
from vocab.elbow import fit_or_load, knee, write_elbow_csv
from vocab.kmeans import RANGES as KMEANS_RANGES, SPEED_ONLY, KMeansConfig
from vocab.plots import plot_centroids, plot_elbow
from utils.cli import run_script
from utils import names
from utils.config import CONFIG_DIR, ConfigError, above, at_least, check_ranges, each, load_config
from utils.distributed import all_gather_rows, all_reduce_sum, close_distributed, init_distributed, shard_sequences
from utils.io import save_json
from utils.runs import open_run_dir


@dataclass
class ClusterConfig(KMeansConfig):
    """The k-means options (vocab/kmeans.py: KMeansConfig, their defaults) plus the stage's own."""
    corpus: str = ""              # frame corpus directory (python ingest.py)
    out: str = ""                 # run directory
    vocab: str = ""               # an existing vocabulary (a cluster.py out dir): tokenise only
    k: int = 0                    # clusters for the tokens; 0 = the knee of the sweep
    sweep: list[int] = field(default_factory=list)  # k values of the elbow sweep (paper: 100 ... 10000)
    min_count: int = 500          # <unk>: cluster with fewer frames than this in the pretraining corpus
    max_dist: float = 1.75        # <unk>: frame farther than this from its centre (raw AU units)
    device: str = "auto"
    dominant_min: float = 1.0     # vocab.tsv: AUs of a centre at least this intense are "dominant"
    dominant_top: int = 3         # vocab.tsv: at most this many dominant AUs per token
    plot_top: int = 50            # centroids.png: the most frequent centres shown


RANGES = {**KMEANS_RANGES, "k": at_least(0), "sweep": each(at_least(1)), "min_count": at_least(0),
          "max_dist": above(0), "dominant_top": at_least(0), "plot_top": at_least(0)}

# keys that may change between runs in one out/ directory: they do not change a fitted k
MAY_CHANGE = ("device", "k", "sweep", *SPEED_ONLY, "dominant_min", "dominant_top", "plot_top")


def main(argv: list[str]) -> dict:
    cfg = load_config(ClusterConfig, argv, CONFIG_DIR / "cluster.yaml")
    if not cfg.corpus or not cfg.out:
        raise ConfigError("corpus= and out= are required")
    if not cfg.vocab and not cfg.sweep and cfg.k <= 0:
        raise ConfigError("give k=K, sweep=[...] or vocab=DIR")
    check_ranges(cfg, RANGES)
    vocab = load_vocabulary(cfg.vocab) if cfg.vocab else None      # checked before any frame is read
    ctx = init_distributed(cfg.device)            # under torchrun: this process's rank; else rank 0 of 1
    device = ctx.device
    log = print if ctx.is_main else (lambda *_: None)
    offsets = FrameCorpus.read_offsets(cfg.corpus)                # (S+1,) of the whole corpus
    corpus = FrameCorpus.load(cfg.corpus, device, sequences=shard_sequences(offsets, ctx))  # this rank's part
    check_finite(corpus, cfg.corpus)
    if vocab is not None:
        vocab.check_corpus(corpus, cfg.corpus)                    # before any distance is computed
    frames = corpus.frames                                        # (N_rank, D) float32
    n_frames = int(offsets[-1])
    ks = [] if cfg.vocab else list(cfg.sweep) + ([cfg.k] if cfg.k > 0 and cfg.k not in cfg.sweep else [])
    for k in ks:
        if not 1 <= k <= n_frames:
            raise ConfigError(f"k={k}: must be between 1 and the corpus's {n_frames} frames")
    out = open_run_dir(cfg.out, cfg, ignore=MAY_CHANGE) if ctx.is_main else Path(cfg.out)
    log(f"corpus {cfg.corpus}: {n_frames} frames, {len(offsets) - 1} sequences; device {device}, "
        f"{ctx.world_size} rank(s)")

    # --- downstream corpus: an existing vocabulary, no clustering
    if cfg.vocab:
        labels, dist = nearest(frames, vocab.centroids, backend=cfg.backend, chunk=cfg.chunk)
        tokens = gather_tokens(tokenize(corpus, vocab, labels, dist), ctx)           # all sequences, on rank 0
        n_unk = int(all_reduce_sum((vocab.frame_tokens(labels, dist) == UNK).sum().reshape(1), ctx))
        close_distributed(ctx)                                                        # rank 0 writes alone
        unk = n_unk / n_frames if n_frames else 0.0
        summary = {"vocab": cfg.vocab, "vocab_fingerprint": vocab.fingerprint, "k": vocab.k,
                   "corpus_fingerprint": corpus.fingerprint, "unk_fraction": unk}
        if ctx.is_main:
            save_json(summary, out / names.SUMMARY)
            tokens.save(out)
        log(f"tokens of {n_frames} frames with vocabulary {cfg.vocab} (k={vocab.k}): <unk> {unk:.1%}")
        return summary

    # --- the sweep: every k fitted once, kept on disk as it finishes
    writer = SummaryWriter(str(out / "tb")) if ctx.is_main else None
    fitted = {}
    for k in ks:
        curve = None if writer is None else \
            lambda it, r, inertia, frac, k=k: writer.add_scalar(f"kmeans_k{k}/inertia_restart{r}", inertia, it)
        fitted[k] = r = fit_or_load(frames, k, cache=out / "sweep", params=dict(cfg),
                                    corpus_fingerprint=corpus.fingerprint, backend=cfg.backend, chunk=cfg.chunk,
                                    batch_restarts=cfg.batch_restarts, callback=curve, ctx=ctx)
        if writer is not None and not r["loaded"]:
            for name, key in (("mean_dist", "mean_dist"), ("inertia", "inertia"), ("iterations", "n_iter"),
                              ("seconds", "seconds")):
                writer.add_scalar(f"elbow/{name}", r[key], k)
            writer.flush()
        log(f"k={k}: mean distance {r['mean_dist']:.4f}, inertia {r['inertia']:.6g}, {r['n_iter']} iterations "
            f"({r['stop']}), {r['seconds']:.1f} s" + (" [finished earlier]" if r["loaded"] else ""))
    summary = {"corpus_fingerprint": corpus.fingerprint}
    if cfg.sweep:
        swept = [fitted[k] for k in cfg.sweep]
        suggested = knee([r["k"] for r in swept], [r["mean_dist"] for r in swept])
        if ctx.is_main:
            write_elbow_csv(out / names.ELBOW_CSV, swept)
            plot_elbow(out / names.ELBOW_PNG, swept, suggested)
        summary["suggested_k"] = suggested
        log(f"elbow: suggested k = {suggested} (knee of mean distance against log k)")
    k = cfg.k if cfg.k > 0 else summary["suggested_k"]

    # --- tokens for the chosen k: counts and distances on this (the pretraining) corpus
    centroids = fitted[k]["centroids"].to(device)
    labels, dist = nearest(frames, centroids, backend=cfg.backend, chunk=cfg.chunk)   # this rank's frames
    counts = all_reduce_sum(torch.bincount(labels, minlength=k), ctx)                  # (k,) over the corpus
    vocab = Vocabulary(centroids=centroids, counts=counts, au_names=corpus.au_names,
                       min_count=cfg.min_count, max_dist=cfg.max_dist, corpus_fingerprint=corpus.fingerprint)
    tokens = gather_tokens(tokenize(corpus, vocab, labels, dist), ctx)                # all sequences, on rank 0
    labels, dist = all_gather_rows(labels, ctx, to=0), all_gather_rows(dist, ctx, to=0)  # (N,) on rank 0 only
    close_distributed(ctx)                                                            # rank 0 writes alone
    if not ctx.is_main:
        return summary
    vocab.save(out)
    write_vocab_tsv(out / names.VOCAB_TSV, vocab, tokens, labels, dist, min_intensity=cfg.dominant_min,
                    top=cfg.dominant_top)
    token_names = vocab.token_names[N_SPECIAL:]                   # (k,) c0, c1, ...
    plot_centroids(out / names.CENTROIDS_PNG, vocab.centroids, vocab.counts, vocab.au_names, token_names, top=cfg.plot_top)
    aus = [dominant_aus(c, vocab.au_names, min_intensity=cfg.dominant_min, top=cfg.dominant_top)
           for c in vocab.centroids]
    writer.add_embedding(vocab.centroids.cpu(), tag=f"centroids_k{k}", metadata=list(zip(token_names, map(int, vocab.counts), aus)),
                         metadata_header=["token", "count", "dominant_aus"])
    writer.close()
    summary.update(k=k, vocab_size=vocab.size, vocab_fingerprint=vocab.fingerprint,
                   rare_clusters=int((vocab.counts < cfg.min_count).sum()),
                   **vocab.unk_fractions(labels, dist), mean_dist=float(dist.double().mean()))
    save_json(summary, out / names.SUMMARY)
    tokens.save(out)  # last: its presence marks the stage finished
    print(f"k={k}: V={vocab.size} tokens, <unk> {summary['unk_fraction']:.1%} of frames "
          f"({summary['rare_clusters']} clusters under {cfg.min_count} frames); wrote {out}")
    return summary


if __name__ == "__main__":
    run_script(main, "cluster.py")
