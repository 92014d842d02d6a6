"""The vocabulary stage: k-means over all frames (an elbow sweep over k), then one token per frame.

    python cluster.py corpus=DIR out=DIR k=1000
    python cluster.py corpus=DIR out=DIR sweep=[100,200,500,1000,2000,5000,10000]   # tokens for the knee's k
    python cluster.py corpus=DIR out=DIR sweep=[...] k=1000                          # sweep, tokens for k=1000
    python cluster.py corpus=DOWNSTREAM out=DIR vocab=VOCAB_DIR                      # reuse a vocabulary
    python cluster.py corpus=DOWNSTREAM out=DIR vocab=VOCAB_DIR au_subset=shared     # ... on the AUs both have
    python cluster.py corpus=DIR out=DIR k=1000 au_subset=shared share_with=[DIR2]   # build on the AUs shared with DIR2
    python cluster.py corpus=DIR out=DIR config=configs/paper/cluster.yaml           # the paper's settings
    python cluster.py import=PUBLISHED_DIR out=VOCAB                                 # the paper's published vocabulary

Writes to out/: config.yaml; sweep/k{k}.pt (each finished k; a re-run resumes after the last one);
elbow.csv, elbow.png (with a sweep); tb/ (TensorBoard); centroids.pt, vocab.tsv, centroids.png,
summary.json; tokens.pt last. With vocab=: tokens.pt and summary.json only, the <unk> rule using
the pretraining counts stored in the vocabulary. A corpus whose AUs differ from the vocabulary's is
refused before anything is computed, unless au_subset=shared (vocab/au_sets.py); summary.json and
tokens.pt then record the AUs used. With import=: centroids.pt, vocab.tsv, centroids.png,
import_report.json and summary.json of the published files (vocab/published.py); `cluster.py vocab=`
and `embed.py import=` take that folder like one of ours. Pictures also go to TensorBoard (tb/) as
images, with the run's hyperparameters; k-means shows its progress (iterations, inertia, ETA).

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

from data.openface.corpus import FrameCorpus, read_meta as read_corpus_meta
from vocab.au_sets import SUBSETS, match_aus
from vocab.elbow import MIN_KNEE_POINTS, fit_or_load, knee, write_elbow_csv
from vocab.kmeans import RANGES as KMEANS_RANGES, SPEED_ONLY, KMeansConfig
from vocab.plots import plot_centroids, plot_elbow
from vocab.published import read_published_vocabulary, report_lines
from vocab.tokens import (N_SPECIAL, UNK, Vocabulary, check_finite, dominant_aus, gather_tokens, load_vocabulary,
                          nearest, tokenize, write_vocab_tsv)
from utils.cli import run_script
from utils import names
from utils.config import CONFIG_DIR, ConfigError, above, at_least, check_ranges, each, load_config
from utils.distributed import all_gather_rows, all_reduce_sum, close_distributed, init_distributed, shard_sequences
from utils.io import fingerprint, save_json
from utils.progress import progress
from utils.runs import open_run_dir
from utils.tensorboard import log_hparams



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
    au_subset: str = "all"        # all: corpus and vocabulary AUs must be equal | shared: use the AUs they share
    share_with: list[str] = field(default_factory=list)  # building with au_subset=shared: the other corpora
    import_from: str = ""         # CLI import=DIR: the paper's published vocabulary files (vocab/published.py)
    import_min_count: int = 501   # import=: <unk> below this count (released code: count <= 500; its AVEC notebooks: 151)


RANGES = {**KMEANS_RANGES, "k": at_least(0), "sweep": each(at_least(1)), "min_count": at_least(0),
          "max_dist": above(0), "dominant_top": at_least(0), "plot_top": at_least(0), "import_min_count": at_least(1)}

# keys that may change between runs in one out/ directory: they do not change a fitted k
MAY_CHANGE = ("device", "k", "sweep", *SPEED_ONLY, "dominant_min", "dominant_top", "plot_top")
HPARAMS = ("k", "min_count", "max_dist", "n_init", "max_iter", "tol", "reassign_tol", "seed", "init_sample", "backend",
           "au_subset")


def import_vocabulary(cfg) -> dict:
    """cluster.py import=DIR out=VOCAB: the published files as a vocabulary directory, and what was wrong with them."""
    out = open_run_dir(cfg.out, cfg, ignore=MAY_CHANGE)
    vocab, report = read_published_vocabulary(cfg.import_from, k=cfg.k, min_count=cfg.import_min_count,
                                              max_dist=cfg.max_dist)
    vocab.save(out)
    write_vocab_tsv(out / names.VOCAB_TSV, vocab, None, None, None, min_intensity=cfg.dominant_min, top=cfg.dominant_top)
    with SummaryWriter(str(out / "tb")) as writer:
        plot_centroids(out / names.CENTROIDS_PNG, vocab.centroids, vocab.counts, vocab.au_names,
                       vocab.token_names[N_SPECIAL:], top=cfg.plot_top, unk=vocab.unk_clusters, writer=writer)
    report["vocab_fingerprint"] = vocab.fingerprint
    save_json(report, out / names.IMPORT_REPORT)
    summary = {"imported_from": cfg.import_from, "k": vocab.k, "vocab_size": vocab.size,
               "vocab_fingerprint": vocab.fingerprint, "rare_clusters": report["unk_clusters"]["count"]}
    save_json(summary, out / names.SUMMARY)
    for line in report_lines(report):
        print(f"import: {line}")
    print(f"vocabulary {vocab.fingerprint} in {out}; tokenise a corpus with `python cluster.py corpus=DIR "
          f"vocab={out} out=DIR`, import its vectors with `python embed.py import={cfg.import_from} tokens={out} out=DIR`")
    return summary


def shared_aus(cfg, corpus_aus: list[str]):
    """The AUs a new vocabulary is built on: all of the corpus's, or those it shares with `share_with`."""
    if cfg.share_with and cfg.au_subset != "shared":
        raise ConfigError("share_with= is used with au_subset=shared")
    if cfg.au_subset == "shared" and not cfg.share_with:
        raise ConfigError("au_subset=shared without vocab=: give share_with=[CORPUS_DIR, ...], the corpora whose AUs "
                          "the new vocabulary must share")
    common = list(corpus_aus)
    for other in cfg.share_with:
        common = [a for a in common if a in set(read_corpus_meta(other)["au_names"])]
    return match_aus(corpus_aus, common, subset="shared" if cfg.share_with else "all",
                     left_name=f"corpus {cfg.corpus}", right_name=f"the corpora {list(cfg.share_with)}")


def main(argv: list[str]) -> dict:
    cfg = load_config(ClusterConfig, argv, CONFIG_DIR / "cluster.yaml", aliases={"import": "import_from"})
    check_ranges(cfg, RANGES)
    if cfg.import_from:
        if not cfg.out:
            raise ConfigError("import=DIR needs out=VOCAB_DIR")
        return import_vocabulary(cfg)
    if not cfg.corpus or not cfg.out:
        raise ConfigError("corpus= and out= are required")
    if cfg.au_subset not in SUBSETS:
        raise ConfigError(f"au_subset={cfg.au_subset!r}: expected one of {', '.join(SUBSETS)}")
    if not cfg.vocab and not cfg.sweep and cfg.k <= 0:
        raise ConfigError("give k=K, sweep=[...] or vocab=DIR")
    # the AUs, checked before any frame is read or any distance computed
    offsets = FrameCorpus.read_offsets(cfg.corpus)                # (S+1,) of the whole corpus; names a missing one
    corpus_aus = read_corpus_meta(cfg.corpus)["au_names"]
    vocab = load_vocabulary(cfg.vocab) if cfg.vocab else None
    if vocab is not None:
        if cfg.share_with:
            raise ConfigError("share_with= builds a vocabulary; with vocab= the AUs shared with it are used")
        aus = match_aus(corpus_aus, vocab.au_names, subset=cfg.au_subset, left_name=f"corpus {cfg.corpus}",
                        right_name=f"the vocabulary {cfg.vocab}")
    else:
        aus = shared_aus(cfg, corpus_aus)
    ctx = init_distributed(cfg.device)            # under torchrun: this process's rank; else rank 0 of 1
    device = ctx.device
    log = print if ctx.is_main else (lambda *_: None)
    corpus = FrameCorpus.load(cfg.corpus, device, sequences=shard_sequences(offsets, ctx))  # this rank's part
    check_finite(corpus, cfg.corpus)
    frames = corpus.frames if aus.identity else corpus.frames[:, aus.left]   # (N_rank, D) float32
    n_frames = int(offsets[-1])
    ks = [] if cfg.vocab else list(cfg.sweep) + ([cfg.k] if cfg.k > 0 and cfg.k not in cfg.sweep else [])
    for k in ks:
        if not 1 <= k <= n_frames:
            raise ConfigError(f"k={k}: must be between 1 and the corpus's {n_frames} frames")
    if not cfg.vocab and cfg.k <= 0 and len(cfg.sweep) < MIN_KNEE_POINTS:
        raise ConfigError(f"sweep={list(cfg.sweep)} has {len(cfg.sweep)} k values: no knee is claimed with fewer than "
                          f"{MIN_KNEE_POINTS}; give k=K (or a longer sweep)")
    out = open_run_dir(cfg.out, cfg, ignore=MAY_CHANGE) if ctx.is_main else Path(cfg.out)
    log(f"corpus {cfg.corpus}: {n_frames} frames, {len(offsets) - 1} sequences; device {device}, "
        f"{ctx.world_size} rank(s)")
    if not aus.identity:
        log(f"AUs: using the {len(aus.names)} shared {aus.names}; left out of the corpus {aus.only_left or 'none'}, "
            f"of the {'vocabulary' if vocab is not None else 'others'} {aus.only_right or 'none'}")

    # --- downstream corpus: an existing vocabulary, no clustering
    if vocab is not None:
        centres = vocab.centroids if aus.identity else vocab.centroids[:, aus.right]          # (k, D_used)
        labels, dist = nearest(frames, centres, backend=cfg.backend, chunk=cfg.chunk)
        tokens = gather_tokens(tokenize(corpus, vocab, labels, dist, au_names=aus.names), ctx)  # all sequences, on rank 0
        n_unk = int(all_reduce_sum((vocab.frame_tokens(labels, dist) == UNK).sum().reshape(1), ctx))
        close_distributed(ctx)                                                        # rank 0 writes alone
        unk = n_unk / n_frames if n_frames else 0.0
        summary = {"vocab": cfg.vocab, "vocab_fingerprint": vocab.fingerprint, "k": vocab.k,
                   "corpus_fingerprint": corpus.fingerprint, "unk_fraction": unk, "au_subset": aus.record()}
        if ctx.is_main:
            save_json(summary, out / names.SUMMARY)
            tokens.save(out)
        log(f"tokens of {n_frames} frames with vocabulary {cfg.vocab} (k={vocab.k}): <unk> {unk:.1%}")
        return summary

    # --- the sweep: every k fitted once, kept on disk as it finishes
    writer = SummaryWriter(str(out / "tb")) if ctx.is_main else None
    # the sweep cache belongs to these frames: the corpus and, with au_subset, the AUs kept
    frames_fingerprint = corpus.fingerprint if aus.identity else fingerprint(corpus.fingerprint, ",".join(aus.names))
    fitted = {}
    sweep_bar = progress(total=len(ks), desc="k sweep", unit="k", enabled=ctx.is_main and len(ks) > 1)
    for k in ks:
        bar = progress(total=cfg.max_iter * cfg.n_init if not cfg.batch_restarts else cfg.max_iter,
                       desc=f"k-means k={k}", unit="it", enabled=ctx.is_main)

        def step(it, r, inertia, frac, k=k, bar=bar):
            bar.update(1, inertia=f"{inertia:.5g}", moved=f"{frac:.2%}")
            if writer is not None:
                writer.add_scalar(f"kmeans_k{k}/inertia_restart{r}", inertia, it)
        fitted[k] = r = fit_or_load(frames, k, cache=out / "sweep", params=dict(cfg),
                                    corpus_fingerprint=frames_fingerprint, backend=cfg.backend, chunk=cfg.chunk,
                                    batch_restarts=cfg.batch_restarts, callback=step, ctx=ctx)
        bar.close()
        if writer is not None and not r["loaded"]:
            for name, key in (("mean_dist", "mean_dist"), ("inertia", "inertia"), ("iterations", "n_iter"),
                              ("seconds", "seconds")):
                writer.add_scalar(f"elbow/{name}", r[key], k)
            writer.flush()
        sweep_bar.update(1, k=k)
        log(f"k={k}: mean distance {r['mean_dist']:.4f}, inertia {r['inertia']:.6g}, {r['n_iter']} iterations "
            f"({r['stop']}), {r['seconds']:.1f} s" + (" [finished earlier]" if r["loaded"] else ""))
    sweep_bar.close()
    summary = {"corpus_fingerprint": corpus.fingerprint}
    if cfg.sweep:
        swept = [fitted[k] for k in cfg.sweep]
        suggested = knee([r["k"] for r in swept], [r["mean_dist"] for r in swept])
        if ctx.is_main:
            write_elbow_csv(out / names.ELBOW_CSV, swept)
            plot_elbow(out / names.ELBOW_PNG, swept, suggested, writer=writer)
        summary["suggested_k"] = suggested
        if suggested is not None:
            log(f"elbow: suggested k = {suggested} (knee of mean distance against log k)")
        else:
            why = (f"{len(swept)} k values, fewer than {MIN_KNEE_POINTS}" if len(swept) < MIN_KNEE_POINTS
                   else "the curve has no elbow")
            log(f"elbow: no knee claimed ({why})")
            if cfg.k <= 0:
                close_distributed(ctx)
                raise ValueError(f"sweep={list(cfg.sweep)}: no knee claimed ({why}); give k=K (the fitted k are kept "
                                 f"in {out / 'sweep'} and reused)")
    k = cfg.k if cfg.k > 0 else summary["suggested_k"]

    # --- tokens for the chosen k: counts and distances on this (the pretraining) corpus
    centroids = fitted[k]["centroids"].to(device)
    labels, dist = nearest(frames, centroids, backend=cfg.backend, chunk=cfg.chunk)   # this rank's frames
    counts = all_reduce_sum(torch.bincount(labels, minlength=k), ctx)                  # (k,) over the corpus
    vocab = Vocabulary(centroids=centroids, counts=counts, au_names=aus.names,
                       min_count=cfg.min_count, max_dist=cfg.max_dist, corpus_fingerprint=corpus.fingerprint)
    tokens = gather_tokens(tokenize(corpus, vocab, labels, dist, au_names=aus.names), ctx)  # all sequences, on rank 0
    labels, dist = all_gather_rows(labels, ctx, to=0), all_gather_rows(dist, ctx, to=0)  # (N,) on rank 0 only
    close_distributed(ctx)                                                            # rank 0 writes alone
    if not ctx.is_main:
        return summary
    vocab.save(out)
    write_vocab_tsv(out / names.VOCAB_TSV, vocab, tokens, labels, dist, min_intensity=cfg.dominant_min,
                    top=cfg.dominant_top)
    token_names = vocab.token_names[N_SPECIAL:]                   # (k,) c0, c1, ...
    plot_centroids(out / names.CENTROIDS_PNG, vocab.centroids, vocab.counts, vocab.au_names, token_names,
                   top=cfg.plot_top, unk=vocab.unk_clusters, writer=writer)
    dominant = [dominant_aus(c, vocab.au_names, min_intensity=cfg.dominant_min, top=cfg.dominant_top)
                for c in vocab.centroids]
    writer.add_embedding(vocab.centroids.cpu(), tag=f"centroids_k{k}", metadata=list(zip(token_names, map(int, vocab.counts), dominant)),
                         metadata_header=["token", "count", "dominant_aus"])
    summary.update(k=k, vocab_size=vocab.size, vocab_fingerprint=vocab.fingerprint,
                   rare_clusters=int(vocab.unk_clusters.sum()),
                   **vocab.unk_fractions(labels, dist), mean_dist=float(dist.double().mean()), au_subset=aus.record())
    log_hparams(writer, {**{key: cfg[key] for key in HPARAMS}, "k": k, "n_aus": len(aus.names)},
                {"hparam/mean_dist": summary["mean_dist"], "hparam/unk_fraction": summary["unk_fraction"],
                 "hparam/vocab_size": vocab.size})
    writer.close()
    save_json(summary, out / names.SUMMARY)
    tokens.save(out)  # last: its presence marks the stage finished
    print(f"k={k}: V={vocab.size} tokens, <unk> {summary['unk_fraction']:.1%} of frames "
          f"({summary['rare_clusters']} clusters under {cfg.min_count} frames); wrote {out}")
    return summary


if __name__ == "__main__":
    run_script(main, "cluster.py")
