"""python embed.py tokens=DIR out=DIR — the co-occurrence of the tokens, then GloVe for each dimension.

Reads DIR/tokens.pt (and vocab.tsv, centroids.pt beside it) as cluster.py writes them. Writes to out/:
    config.yaml                  the resolved config
    cooccurrence.pt              {"matrix": sparse COO (V, V) float64, "fingerprint", ...}
    cooccurrence.bin, vocab.txt  the same matrix for the Stanford `glove` tool (CREC, 1-based ids)
    vectors_d{d}.txt             GloVe text format, W + W~ (no header)
    vectors_d{d}.w2v.txt/.bin    word2vec text (`n d` header) and binary formats (gensim loads both)
    embeddings_d{d}.pt           {"W", "W_tilde" (V, d), "b", "b_tilde" (V,), "learned" (V,) bool, "tokens",
                                  "fingerprint", "report" (the fit's figures and warnings), ...}
    embedding_report.json        what each d's vectors learnt (glove/report.py), also in TensorBoard
    tb/d{d}/                     TensorBoard: the loss curve, the report, the projector view (token, count, AUs)
    summary.json                 written last: per d, J (total, per nonzero), relative change, epochs,
                                 seconds, whether the stopping rule was met, and warnings

GloVe (glove/trainer.py) runs by default as the released code did (1000 epochs of mittens AdaGrad:
measured best downstream on the demo, BENCHMARKS.md), and with `glove.converge=true` runs the paper's
objective to its optimum (L-BFGS, stopping on the relative change of J, `glove.epochs` the maximum;
`glove.l2` adds an L2 penalty). The console warns when J is still falling at the end (the stopping
rule was not met), when 2dV + 2V parameters reach the number of nonzeros (the fit can
interpolate: the vectors are not determined by the data) and when vector norms blow up.

Tokens that never occur in the pretraining corpus (no nonzero in X) have nothing to learn: they are
left out of vocab.txt, cooccurrence.bin and the vector text files (as Stanford's vocab_count would),
and keep zero vectors with `learned` False in embeddings_d{d}.pt, which train.py's bilstm_glove
then starts from (zeros, not random vectors passed off as learned; trainable unless frozen).
Run it again with the same config to resume: the co-occurrence and finished dimensions are reused,
an interrupted dimension continues from checkpoints/glove_d{d}.pt. Adding dimensions to `dims` is allowed.

    torchrun --nproc_per_node=G embed.py tokens=DIR out=DIR     # G processes (NCCL on GPUs, gloo on CPU)

    python embed.py import=DIR|FILE tokens=VOCAB out=EMB        # vectors trained elsewhere, no training

`import=` reads vectors made elsewhere into `embeddings_d{d}.pt` for the vocabulary in VOCAB (a
cluster.py out dir, of ours or imported with `cluster.py import=`), so train.py's bilstm_glove rows use
them: a folder of the paper's published `glove_embeddings_<d>_*.csv` (their ids through the token
index in the same folder; every d of `dims` found), or one file of Stanford GloVe text or word2vec
text/binary (names as in our vocab.txt). glove/import_vectors.py holds the readers and the
vocabulary check; `import_report.json` and the console say what was imported, what was not used and
which tokens had no vector (they get `import_missing`, default the mean vector).

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
from glove.files import VECTOR_FORMATS, read_cooccurrence, read_embedding_file, write_crec, write_projector, \
    write_vectors, write_vectors_txt, write_vocab_txt
from glove.import_vectors import FORMATS, MISSING, align, published_files, read_vectors
from glove.plots import embedding_figures
from glove.report import embedding_report, token_states
from glove.trainer import GloveConfig, GloveTrainer, check_config as check_glove, diagnose
from vocab.published import published_names, read_token_index
from vocab.token_set import TokenFileError, load_tokens
from vocab.tokens import CENTROIDS_FILE, N_SPECIAL, Vocabulary, dominant_aus
from utils.cli import run_script
from utils.config import CONFIG_DIR, ConfigError, load_config
from utils.distributed import broadcast_object, close_distributed, init_distributed
from utils import names
from utils.artifacts import ArtifactError, MismatchError, load_torch
from utils.io import fingerprint, save_json, save_torch
from utils.runs import RunDirError, open_run_dir
from utils.progress import progress

DEFAULTS = CONFIG_DIR / "embed.yaml"


@dataclass
class ReportConfig:
    synth: str = ""      # synth.py kind=pretrain's out= (hidden.pt): agreement with the hidden states
    corpus: str = ""     # ingest.py's out= for that corpus (frame timestamps); both or neither


@dataclass
class EmbedConfig:
    tokens: str = ""                      # folder holding tokens.pt (or the file itself); required
    out: str = "runs/embed"
    device: str = "auto"
    dims: list[int] = field(default_factory=lambda: [25, 50, 100, 200])
    stanford_unk_name: str = "<raw_unk>"  # the name of <unk> in vocab.txt only (see glove/files.py)
    import_from: str = ""                 # CLI import=DIR|FILE: vectors trained elsewhere (see above)
    import_format: str = "auto"           # auto | published_csv | glove_txt | word2vec_txt | word2vec_bin
    import_missing: str = "mean"          # tokens without a vector: mean | zero | random
    cooccurrence: CooccurrenceConfig = field(default_factory=CooccurrenceConfig)
    glove: GloveConfig = field(default_factory=GloveConfig)
    report: ReportConfig = field(default_factory=lambda: ReportConfig())


def check_config(cfg) -> None:
    if not cfg.tokens:
        raise ConfigError("tokens: required — the folder holding tokens.pt (tokens=DIR)" +
                          (", or the vocabulary (centroids.pt) with import=" if cfg.import_from else ""))
    if cfg.import_format not in FORMATS or cfg.import_missing not in MISSING:
        raise ConfigError(f"import_format={cfg.import_format!r} / import_missing={cfg.import_missing!r}: expected "
                          f"one of {', '.join(FORMATS)} / {', '.join(MISSING)}")
    if not cfg.dims or any(d < 1 for d in cfg.dims) or len(set(cfg.dims)) != len(cfg.dims):
        raise ConfigError(f"dims: must be distinct positive integers, got {list(cfg.dims)}")
    if not cfg.stanford_unk_name or any(c.isspace() for c in cfg.stanford_unk_name):
        raise ConfigError(f"stanford_unk_name: must be one word, got {cfg.stanford_unk_name!r}")
    if bool(cfg.report.synth) != bool(cfg.report.corpus):
        raise ConfigError("report.synth and report.corpus: give both (hidden states need frame timestamps) or neither")
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


def import_vectors(cfg) -> dict:
    """embed.py import=...: vectors of another run (the paper's, Stanford's tool, gensim) for our vocabulary."""
    out = open_run_dir(cfg.out, cfg, ignore=("device",))
    where = Path(cfg.tokens)
    if (where / CENTROIDS_FILE).exists() or where.suffix == ".pt":
        vocab = Vocabulary.load(where)
        token_names, fp = vocab.token_names, vocab.fingerprint
        dominant = ["-"] * N_SPECIAL + [dominant_aus(c, vocab.au_names, min_intensity=1.0, top=1) for c in vocab.centroids]
    else:                                               # a tokens dir without its vocabulary beside it
        tokens = load_tokens(where)
        token_names, fp, dominant = tokens.names, tokens.fingerprint, tokens.dominant_aus
    source = Path(cfg.import_from)
    if source.is_dir():                                 # the published folder: one CSV per d, rows = published ids
        index, index_path = read_token_index(source, len(token_names) - N_SPECIAL)
        row_names = published_names(index)
        files = published_files(source)
        wanted = [d for d in cfg.dims if d in files]
        if not wanted:
            raise FileNotFoundError(f"import={source}: no glove_embeddings_<d>_*.csv for dims={list(cfg.dims)} "
                                    f"(found d = {sorted(files) or 'none'})")
        found = [read_vectors(files[d], "published_csv") for d in wanted]
        print(f"import: {source} (token index {index_path.name}, {len(index)} tokens); d = {wanted}"
              + (f"; not found: d = {[d for d in cfg.dims if d not in files]}" if len(wanted) < len(cfg.dims) else ""))
    else:
        row_names = None
        found = [read_vectors(source, cfg.import_format)]
    figures, learned_by_d = {}, {}
    report = {"source": str(source), "vocabulary": str(where), "fingerprint": fp, "missing_treatment": cfg.import_missing,
              "train_py": "bilstm_glove starts every token from its vector here and trains them all unless "
                          "bilstm_glove.freeze=true; tokens without a vector start from the treatment's vector",
              "dims": {}}
    for file in found:
        vectors, learned, rep = align(file, token_names, row_names=row_names, aliases={cfg.stanford_unk_name: "<unk>"},
                                      missing=cfg.import_missing, seed=cfg.glove.seed)
        d = rep["dim"]
        V = len(token_names)
        if row_names is not None:  # why each published token lacks a vector
            named = {name: i for i, name in row_names.items()}
            lacking = rep["without_vector"]["tokens"]
            rep["without_vector"]["not_in_token_index"] = [t for t in lacking if t not in named]
            rep["without_vector"]["published_id_without_row"] = [t for t in lacking if t in named]
        zeros = torch.zeros(V, d)
        save_torch({"W": torch.from_numpy(vectors), "W_tilde": zeros, "b": torch.zeros(V), "b_tilde": torch.zeros(V),
                    "tokens": token_names, "fingerprint": fp, "dim": d, "learned": torch.from_numpy(learned),
                    "imported": rep, "epochs": 0, "losses": [], "converged": None, "seconds": 0.0},
                   out / names.embeddings_file(d))
        write_vectors_txt(token_names, torch.from_numpy(vectors), out / names.vectors_file(d))
        report["dims"][str(d)] = rep
        figures[d], learned_by_d[d] = (torch.from_numpy(vectors), []), torch.from_numpy(learned)
        miss = rep["without_vector"]
        why = (f": {len(miss['published_id_without_row'])} whose published id has no row (ids >= {rep['rows']}), "
               f"{len(miss['not_in_token_index'])} not in the token index (<unk> clusters)") if row_names is not None else \
            (f" ({', '.join(miss['tokens'][:6])}{' ...' if miss['count'] > 6 else ''})" if miss["count"] else "")
        print(f"d={d}: {file.path.name} ({rep['format']}, {rep['rows']} rows): {rep['imported']} of {V} tokens imported; "
              f"{miss['count']} without a vector -> {miss['treatment']}{why}"
              + (f"; {rep['not_used']['count']} names not used ({', '.join(rep['not_used']['names'][:3])})"
                 if rep["not_used"]["count"] else ""))
    embedding_figures(out, figures, token_names, dominant, learned=learned_by_d)
    save_json(report, out / names.IMPORT_REPORT)
    print(f"embeddings in {out} (vocabulary {fp})")
    return report


def main(argv: list[str]) -> None:
    cfg = load_config(EmbedConfig, argv, DEFAULTS, aliases={"import": "import_from"})
    check_config(cfg)
    if cfg.import_from:
        return import_vectors(cfg)
    ctx = init_distributed(cfg.device)              # under torchrun: this process's rank; else rank 0 of 1
    device = ctx.device
    out = open_run_dir(cfg.out, cfg, ignore=("device", "dims", "report")) if ctx.is_main else Path(cfg.out)
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
                              dense_max_entries=c.dense_max_entries, ctx=ctx, show_progress=True).cpu()
        cooc_seconds = time.perf_counter() - start                             # .cpu() waited for the device
    close_distributed(ctx)                          # GloVe trains on rank 0 alone (see above)
    if not ctx.is_main:
        return
    if reuse:
        matrix, cooc_seconds = saved["matrix"], saved["seconds"]
        print(f"co-occurrence: reusing {cooc_file}")
    learned = torch.zeros(V, dtype=torch.bool)                                  # (V,) a nonzero in row or column
    learned[matrix.coalesce().indices().flatten()] = True
    if not reuse:
        write_crec(matrix, out / names.CREC_FILE, keep=learned)
        write_vocab_txt(vocab.names, counts, out / names.GLOVE_VOCAB, unk_name=cfg.stanford_unk_name, keep=learned)
        save_torch({"matrix": matrix, **stamp, "vocab_size": V, "tokens": vocab.names, "seconds": cooc_seconds,
                    "ranks": ctx.world_size, **OmegaConf.to_container(c)}, cooc_file)  # written last: marks it done
    nnz = matrix._nnz()
    print(f"co-occurrence: {nnz} nonzeros ({nnz / V ** 2:.1%} of V x V), total {matrix.values().sum():.6g}, "
          f"built in {cooc_seconds:.2f} s")
    if nnz == 0:
        raise TokenFileError(f"{vocab.path}: the co-occurrence matrix is empty (no sequence has two tokens?)")
    unseen = [vocab.names[i] for i in range(V) if not learned[i]]
    if unseen:
        print(f"{len(unseen)} of {V} tokens never occur ({', '.join(unseen[:8])}{' ...' if len(unseen) > 8 else ''}): "
              f"left out of vocab.txt, cooccurrence.bin and the vector files; zero vectors, learned=False, "
              f"in embeddings_d*.pt")
    reference = report_inputs(cfg, vocab, V)

    # 2. GloVe, one dimension at a time; a finished dimension is skipped
    summary = {"vocab_size": V, "nonzeros": nnz, "cooccurrence_seconds": cooc_seconds, **stamp,
               "never_occur": unseen, "dims": {}}
    reports = {}
    figures = {}                                                               # d -> (vectors, losses): glove/plots.py
    metadata = [[name, str(int(n)), aus or "-"] for name, n, aus in zip(vocab.names, counts, vocab.dominant_aus)]
    for d in cfg.dims:
        final = out / names.embeddings_file(d)
        done = reusable(read_embedding_file, final, d=d, stamp=stamp)
        if done is not None:
            print(f"d={d}: finished already ({final})")
        else:
            checkpoint = out / "checkpoints" / f"glove_d{d}.pt"
            trainer = GloveTrainer(matrix, dim=d, cfg=cfg.glove, device=device, fingerprint=vocab.fingerprint)
            with progress(total=cfg.glove.epochs, desc=f"GloVe d={d}", unit="epoch") as bar:  # epochs, J, ETA
                result = trainer.fit(checkpoint=checkpoint, tb_dir=out / "tb" / f"d{d}", tag=f"glove_d{d}",
                                     on_epoch=lambda e: bar.update(e - bar.n, J=f"{trainer.losses[-1]:.6g}" if trainer.losses else "-"))
            model = result.model
            vectors = model.vectors().cpu()                                    # (V, d) W + W~
            for fmt, suffix in VECTOR_FORMATS.items():
                write_vectors(vocab.names, vectors, out / f"vectors_d{d}{suffix}", format=fmt, keep=learned)
            write_projector(out / "tb" / f"d{d}", vectors, metadata, tag=f"glove_d{d}", step=result.epochs)
            done = {name: getattr(model, name).detach().cpu() for name in ("W", "W_tilde", "b", "b_tilde")}
            done.update(tokens=vocab.names, learned=learned, **stamp, dim=d, epochs=result.epochs,
                        converged=result.converged, losses=result.losses, seconds=result.seconds,
                        report={k: v for k, v in diagnose(trainer, result).items() if k != "seconds"},  # timing: top level only
                        config=OmegaConf.to_container(cfg.glove))
            save_torch(done, final)                                            # written last: marks d done
            checkpoint.unlink(missing_ok=True)
            if not any(checkpoint.parent.iterdir()):
                checkpoint.parent.rmdir()
        fit = {**done["report"], "seconds": done["seconds"]}
        print(f"d={d}: J {fit['J']:.6g} ({fit['J_per_nonzero']:.3g} per nonzero), relative change {fit['rel_change']:.2g}"
              f"/epoch, {fit['epochs']} epochs ({fit['optimizer']}), {fit['seconds']:.1f} s")
        for line in fit["warnings"]:
            print(f"d={d}: WARNING {line}")
        reports[str(d)] = embedding_report(done["W"] + done["W_tilde"], counts=counts, learned=done["learned"],
                                           **reference)
        log_report(out / "tb" / f"d{d}", reports[str(d)], step=fit["epochs"])
        summary["dims"][str(d)] = fit
        figures[d] = (done["W"] + done["W_tilde"], list(done["losses"]))
    embedding_figures(out, figures, vocab.names, vocab.dominant_aus, hparams=OmegaConf.to_container(cfg.glove))
    save_json(reports, out / "embedding_report.json")
    print_report(reports)
    save_json(summary, out / names.SUMMARY)
    print(f"embeddings in {out}")


def report_inputs(cfg, vocab, V: int) -> dict:
    """The k-means centres (AU space) and, on the synthetic corpus, the hidden states, for the report."""
    inputs = {}
    centroids = vocab.path.parent / CENTROIDS_FILE
    if centroids.exists():
        centres = Vocabulary.load(centroids).centroids.double().numpy()     # (k, D)
        inputs.update(centres=centres, centre_ids=torch.arange(V - len(centres), V).numpy())
    if cfg.report.synth:
        from data.openface.corpus import FrameCorpus
        corpus = FrameCorpus.load(cfg.report.corpus)
        hidden_file = Path(cfg.report.synth) / names.HIDDEN
        if not hidden_file.exists():
            raise FileNotFoundError(f"report.synth: {hidden_file} does not exist (synth.py kind=pretrain's out=)")
        hidden = load_torch(hidden_file, "synthetic hidden states")
        states, _ = token_states(vocab.tokens, vocab.offsets, corpus.timestamps, corpus.offsets,
                                 corpus.sequence_ids, hidden, V)
        inputs["states"] = states
    return inputs


REPORT_COLUMNS = [("mean_pairwise_cosine", "mean cos"), ("spearman_cos_vs_centre_dist", "rho(cos, centre dist)"),
                  ("knn_overlap@5", "5-NN overlap"), ("norm_median", "median norm"), ("norm_max", "max norm"),
                  ("spearman_norm_vs_count", "rho(norm, count)"), ("hidden_state_nn_agreement", "hidden-state NN")]


def print_report(reports: dict) -> None:
    shown = [(k, h) for k, h in REPORT_COLUMNS if any(k in r for r in reports.values())]
    print("embedding report (embedding_report.json):")
    print("  d    " + "  ".join(f"{h:>21}" for _, h in shown))
    for d, r in reports.items():
        print(f"  {d:<4} " + "  ".join(f"{r.get(k, float('nan')):>21.3f}" for k, _ in shown))


def log_report(tb_dir: Path, report: dict, *, step: int) -> None:
    from torch.utils.tensorboard import SummaryWriter
    with SummaryWriter(str(tb_dir)) as writer:
        for key, value in report.items():
            if isinstance(value, float):
                writer.add_scalar(f"report/{key.replace('@', '_at_')}", value, step)


if __name__ == "__main__":
    run_script(main, "embed.py")
