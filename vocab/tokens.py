"""Frames -> token ids, and the two artifacts that carry them (`centroids.pt`, `tokens.pt`).

Token ids: 0 `<unk>`, 1 `<start>`, 2 `<end>`, cluster c -> c + 3 (V = k + 3). A frame becomes
`<unk>` when its cluster has fewer than `min_count` frames in the pretraining corpus, or when it is
farther than `max_dist` (Euclidean, raw AU units) from its centre, or when its cluster is one the
vocabulary `excluded` (an imported vocabulary whose token index lacks it: vocab/published.py).
Sequence s becomes `<start>`, one token per frame of s, `<end>`. A centre with a NaN value (the
published vocabulary has one) is never the nearest centre of any frame (`nearest`).

The vocabulary fingerprint hashes the centres, the pretraining counts, the two thresholds and the
excluded clusters: everything that decides a token. `tokens.pt` carries it, and `Tokens.load(..., vocab=...)` refuses
tokens made with another vocabulary.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.openface.corpus import FrameCorpus
from vocab.assign import assign, cpu_threads, exact_sq_dist
from vocab.au_sets import match_aus
from utils import names
from utils.artifacts import Tensor, check_fields, check_match, load_torch, require
from utils.distributed import Dist, all_gather_objects, all_gather_rows
from utils.io import fingerprint, save_text, save_torch

SPECIALS = {"<unk>": 0, "<start>": 1, "<end>": 2}
UNK, START, END = 0, 1, 2
N_SPECIAL = len(SPECIALS)
CENTROIDS_FILE, TOKENS_FILE, VOCAB_TSV = names.CENTROIDS, names.TOKENS, names.VOCAB_TSV


def vocab_fingerprint(centroids: torch.Tensor, counts: torch.Tensor, min_count: int, max_dist: float,
                      excluded: tuple[int, ...] = ()) -> str:
    parts = [centroids.detach().float().cpu(), counts.detach().long().cpu(), np.array([min_count, max_dist], dtype=np.float64)]
    if excluded:  # only then: vocabularies without exclusions keep their fingerprints
        parts.append(np.array(sorted(excluded), dtype=np.int64))
    return fingerprint(*parts)


@dataclass(kw_only=True)
class Vocabulary:
    centroids: torch.Tensor   # (k, D) float32
    counts: torch.Tensor      # (k,) int64, frames per cluster in the pretraining corpus
    au_names: list[str]
    min_count: int
    max_dist: float
    corpus_fingerprint: str = ""  # of the pretraining corpus
    excluded: tuple[int, ...] = ()  # clusters that are always <unk>, whatever their count

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def size(self) -> int:
        return self.k + N_SPECIAL

    @property
    def fingerprint(self) -> str:
        return vocab_fingerprint(self.centroids, self.counts, self.min_count, self.max_dist, self.excluded)

    @property
    def token_names(self) -> list[str]:
        return list(SPECIALS) + [f"c{c}" for c in range(self.k)]

    @property
    def unk_clusters(self) -> torch.Tensor:
        """(k,) bool: clusters whose frames are all <unk> (too rare, or excluded)."""
        counts, min_count = self._rule(self.counts.device)
        return counts < min_count

    def _rule(self, device) -> tuple[torch.Tensor, int]:
        """The counts and min_count the <unk> rule reads: an excluded cluster counts as one with no frames."""
        counts = self.counts.to(device)
        if not self.excluded:
            return counts, self.min_count
        counts = counts.clone()
        counts[list(self.excluded)] = 0
        return counts, max(self.min_count, 1)

    def check_corpus(self, corpus: FrameCorpus, where: str | Path) -> None:
        """The corpus must hold the AUs of the centres, in their order."""
        match_aus(corpus.au_names, self.au_names, subset="all", left_name=f"corpus {where}",
                  right_name="the vocabulary")  # the one rule and message (vocab/au_sets.py)

    def frame_tokens(self, labels: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        counts, min_count = self._rule(labels.device)
        return frame_tokens(labels, dist, counts, min_count=min_count, max_dist=self.max_dist)

    def unk_fractions(self, labels: torch.Tensor, dist: torch.Tensor) -> dict[str, float]:
        """The share of frames that are <unk>, and of those by each half of the rule (they overlap)."""
        counts, min_count = self._rule(labels.device)
        rare, far = unk_reasons(labels, dist, counts, min_count=min_count, max_dist=self.max_dist)
        return {"unk_fraction": float((rare | far).float().mean()), "unk_rare_fraction": float(rare.float().mean()),
                "unk_far_fraction": float(far.float().mean())}

    def save(self, out: str | Path) -> Path:
        path = Path(out) / CENTROIDS_FILE
        save_torch({"centroids": self.centroids.detach().float().cpu(), "counts": self.counts.detach().long().cpu(),
                    "au_names": list(self.au_names), "fingerprint": self.fingerprint,
                    "min_count": int(self.min_count), "max_dist": float(self.max_dist),
                    "corpus_fingerprint": self.corpus_fingerprint, "excluded": [int(c) for c in self.excluded]}, path)
        return path

    @classmethod
    def load(cls, where: str | Path) -> "Vocabulary":
        """`where` is a directory holding centroids.pt, or the file itself. The fingerprint is recomputed
        from the contents, so an altered or damaged file is refused."""
        path = names.in_dir(where, CENTROIDS_FILE)
        obj = check_fields(load_torch(path, "vocabulary"), path, "vocabulary", {
            "centroids": Tensor(ndim=2, dtype=torch.float32, nan_rows=True), "counts": Tensor(ndim=1, dtype=torch.int64),
            "au_names": list, "fingerprint": str, "min_count": int, "max_dist": float})
        k, n_au = obj["centroids"].shape
        require(k >= 1 and obj["counts"].shape == (k,), path, "vocabulary",
                f"{k} centres but {obj['counts'].numel()} counts")
        require(len(obj["au_names"]) == n_au and all(isinstance(a, str) for a in obj["au_names"]), path,
                "vocabulary", f"centres of {n_au} AUs but au_names {obj['au_names']}")
        vocab = cls(centroids=obj["centroids"], counts=obj["counts"], au_names=list(obj["au_names"]),
                    min_count=int(obj["min_count"]), max_dist=float(obj["max_dist"]),
                    corpus_fingerprint=str(obj.get("corpus_fingerprint", "")),
                    excluded=tuple(int(c) for c in obj.get("excluded", ())))
        require(vocab.fingerprint == obj["fingerprint"], path, "vocabulary",
                f"stored fingerprint {obj['fingerprint']} does not match its contents ({vocab.fingerprint}): "
                f"the file was altered")
        return vocab


def load_vocabulary(where: str | Path) -> Vocabulary:
    """A vocabulary folder as cluster.py `vocab=` reads it: centroids.pt, and tokens.pt beside it
    (when there) made with those very centres, so a folder mixing two runs is refused."""
    vocab = Vocabulary.load(where)
    beside = names.in_dir(where, CENTROIDS_FILE).parent / TOKENS_FILE
    if beside.exists():
        Tokens.load(beside, vocab=vocab)
    return vocab


def unk_reasons(labels: torch.Tensor, dist: torch.Tensor, counts: torch.Tensor, *,
                min_count: int, max_dist: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The <unk> rule: a frame is <unk> when its cluster is rare or it is far from its centre (N,) each."""
    rare = counts[labels] < min_count       # cluster seen fewer than min_count times
    far = dist > max_dist                   # frame far from its centre
    return rare, far


def frame_tokens(labels: torch.Tensor, dist: torch.Tensor, counts: torch.Tensor, *,
                 min_count: int, max_dist: float) -> torch.Tensor:
    """labels (N,) cluster of each frame, dist (N,) Euclidean distance to it -> token ids (N,)."""
    rare, far = unk_reasons(labels, dist, counts, min_count=min_count, max_dist=max_dist)
    return torch.where(rare | far, UNK, labels + N_SPECIAL)


def with_boundaries(tokens: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame tokens (N,) of S sequences cut by offsets (S+1,) -> (N + 2S,) with <start>/<end>
    around each sequence, and the new offsets (S+1,)."""
    S = offsets.shape[0] - 1
    seq = torch.repeat_interleave(torch.arange(S, device=tokens.device), offsets.diff())  # (N,) sequence of each frame
    new_offsets = offsets + 2 * torch.arange(S + 1, device=offsets.device)
    out = torch.empty(tokens.shape[0] + 2 * S, dtype=torch.int64, device=tokens.device)
    out[torch.arange(tokens.shape[0], device=tokens.device) + 2 * seq + 1] = tokens
    out[new_offsets[:-1]] = START
    out[new_offsets[1:] - 1] = END
    return out, new_offsets


@dataclass(kw_only=True)
class Tokens:
    tokens: torch.Tensor    # (M,) int64, M = N + 2S
    offsets: torch.Tensor   # (S+1,) int64, sequence s is tokens[offsets[s]:offsets[s+1]]
    video_ids: list[str]    # (S,) video of each sequence
    fingerprint: str        # of the vocabulary
    corpus_fingerprint: str
    vocab_size: int
    au_names: list[str] | None = None  # the AUs frames were assigned on, when fewer than the vocabulary's (au_subset)

    def save(self, out: str | Path) -> Path:
        path = Path(out) / TOKENS_FILE
        save_torch({"tokens": self.tokens.detach().long().cpu(), "offsets": self.offsets.detach().long().cpu(),
                    "video_ids": list(self.video_ids), "fingerprint": self.fingerprint,
                    "corpus_fingerprint": self.corpus_fingerprint, "vocab_size": int(self.vocab_size),
                    "specials": dict(SPECIALS), "content_fingerprint": self.content_fingerprint,
                    "au_names": self.au_names}, path)
        return path

    @property
    def content_fingerprint(self) -> str:
        """Of the token ids themselves: a later stage stamps its output with it."""
        return fingerprint(self.tokens.detach().long().cpu(), self.offsets.detach().long().cpu())

    @classmethod
    def load(cls, where: str | Path, *, vocab: "Vocabulary | str | None" = None,
             corpus_fingerprint: str | None = None) -> "Tokens":
        """The one reader of tokens.pt (`where`: the file or its folder): every field checked, and the
        file refused when it was made with another vocabulary or corpus than expected."""
        path = names.in_dir(where, TOKENS_FILE)
        obj = check_fields(load_torch(path, "tokens"), path, "tokens", {
            "tokens": Tensor(ndim=1, dtype=torch.int64), "offsets": Tensor(ndim=1, dtype=torch.int64),
            "video_ids": list, "fingerprint": str, "corpus_fingerprint": str, "vocab_size": int})
        tokens, offsets, V = obj["tokens"], obj["offsets"], obj["vocab_size"]
        require(bool(obj["fingerprint"]), path, "tokens", "empty vocabulary fingerprint: tokens of an unknown vocabulary")
        require(offsets.numel() >= 1 and int(offsets[0]) == 0 and int(offsets[-1]) == tokens.numel()
                and not bool((offsets.diff() < 0).any()), path, "tokens",
                f"'offsets' must rise from 0 to len(tokens) = {tokens.numel()}")
        require(len(obj["video_ids"]) == offsets.numel() - 1 and all(isinstance(v, str) for v in obj["video_ids"]),
                path, "tokens", f"{len(obj['video_ids'])} video ids for {offsets.numel() - 1} sequences")
        require(V > N_SPECIAL, path, "tokens", f"vocab_size {V} leaves no room beside the special tokens {SPECIALS}")
        require(tokens.numel() == 0 or (int(tokens.min()) >= 0 and int(tokens.max()) < V), path, "tokens",
                f"ids outside [0, vocab_size = {V})")
        loaded = cls(tokens=tokens, offsets=offsets, video_ids=list(obj["video_ids"]),
                     fingerprint=obj["fingerprint"], corpus_fingerprint=obj["corpus_fingerprint"], vocab_size=V,
                     au_names=obj.get("au_names"))
        if "content_fingerprint" in obj:          # files before it was stamped have none
            require(obj["content_fingerprint"] == loaded.content_fingerprint, path, "tokens",
                    "its token ids do not match their stored fingerprint: the file was altered")
        expected = vocab.fingerprint if isinstance(vocab, Vocabulary) else vocab
        check_match(path, "vocabulary", obj["fingerprint"], expected, "re-run cluster.py with this vocabulary")
        check_match(path, "corpus", obj["corpus_fingerprint"], corpus_fingerprint,
                    "tokenise this corpus with cluster.py vocab=... (or give the tokens of this corpus)")
        return loaded


def gather_tokens(part: Tokens, ctx: Dist) -> Tokens | None:
    """Under torchrun: the Tokens of every rank's run of sequences, joined in rank order (the corpus
    order, with utils.distributed.shard_sequences), on rank 0, which writes them; None on the other
    ranks. One process: `part` itself."""
    if not ctx.active:
        return part
    lengths = all_gather_rows(part.offsets.diff(), ctx, to=0)            # (S,) tokens per sequence
    ids = all_gather_objects(part.video_ids, ctx, to=0)
    tokens = all_gather_rows(part.tokens, ctx, to=0)
    if not ctx.is_main:
        return None
    offsets = torch.cat([lengths.new_zeros(1), torch.cumsum(lengths, 0)])
    return dataclasses.replace(part, tokens=tokens, offsets=offsets, video_ids=[v for r in ids for v in r])


def check_finite(corpus: FrameCorpus, where: str | Path) -> None:
    """NaN or inf frames are a user error: name the video, the frame within it and the AU."""
    bad = ~torch.isfinite(corpus.frames)
    if not bool(bad.any()):
        return
    raise ValueError(f"corpus {where}: {int(bad.any(1).sum())} frames hold NaN or inf; the first is "
                     f"{corpus.locate_first(bad)}")


def nearest(frames: torch.Tensor, centroids: torch.Tensor, *, backend: str = "auto",
            chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """frames (N, D) -> nearest centre (N,) int64 and its exact Euclidean distance (N,).

    A centre with a NaN or infinite value is never chosen: the others are searched, and labels
    index the full list of centres."""
    centroids = centroids.to(device=frames.device, dtype=frames.dtype)
    usable = torch.isfinite(centroids).all(dim=1)                  # (k,)
    index = None if bool(usable.all()) else torch.nonzero(usable).squeeze(1)
    if index is not None and index.numel() == 0:
        raise ValueError("no centre of the vocabulary is finite: every one holds NaN or inf")
    search = centroids if index is None else centroids[index]
    with cpu_threads() if frames.device.type == "cpu" else contextlib.nullcontext():
        labels, _ = assign(frames, search, backend=backend, chunk=chunk)
        dist = exact_sq_dist(frames, search, labels).sqrt()
    return (labels if index is None else index[labels]), dist


def tokenize(corpus: FrameCorpus, vocab: Vocabulary, labels: torch.Tensor, dist: torch.Tensor, *,
             au_names: list[str] | None = None) -> Tokens:
    """Token sequences of a corpus whose frames were assigned (labels, dist) to vocab's centres.

    `au_names`: the AUs the assignment used when the caller matched a subset (vocab/au_sets.py);
    recorded in the tokens. Without it, the corpus and the vocabulary must have the same AUs."""
    if au_names is None:
        vocab.check_corpus(corpus, "corpus")
    tokens, offsets = with_boundaries(vocab.frame_tokens(labels, dist), corpus.offsets)
    subset = None if au_names is None or list(au_names) == vocab.au_names else list(au_names)
    return Tokens(tokens=tokens, offsets=offsets, video_ids=corpus.sequence_ids, fingerprint=vocab.fingerprint,
                  corpus_fingerprint=corpus.fingerprint, vocab_size=vocab.size, au_names=subset)


def dominant_aus(centre: torch.Tensor, au_names: list[str], *, min_intensity: float, top: int) -> str:
    """'AU12:2.31,AU06:1.80': the strongest AUs of a centre at or above min_intensity ('-' if none)."""
    values, order = torch.sort(centre.float().cpu(), descending=True)
    parts = [f"{au_names[i].removesuffix('_r')}:{v:.2f}" for v, i in zip(values.tolist()[:top], order.tolist()[:top])
             if v >= min_intensity]
    return ",".join(parts) or "-"


def write_vocab_tsv(path: str | Path, vocab: Vocabulary, tokens: Tokens | None, labels: torch.Tensor | None,
                    dist: torch.Tensor | None, *, min_intensity: float = 1.0, top: int = 3) -> None:
    """One row per token id. count: for a cluster, its frames in the pretraining corpus (what the
    <unk> rule reads); for a special token, how often it occurs. mean_dist: mean distance of those
    frames to their centre ('nan' for <start>/<end>). Without the frames (an imported vocabulary:
    tokens, labels and dist None) the specials' counts and every mean_dist are 'nan'."""
    k = vocab.k
    names = vocab.token_names
    centroids, counts = vocab.centroids.float().cpu(), vocab.counts.cpu()   # once: the rows below read them per centre
    if labels is None:
        mean = torch.full((k,), float("nan"))
        rows = ["token\tid\tcount\tmean_dist\tdominant_aus",
                f"<unk>\t{UNK}\tnan\tnan\t-", f"<start>\t{START}\tnan\tnan\t-", f"<end>\t{END}\tnan\tnan\t-"]
    else:
        dist = dist.double()
        sum_dist = torch.zeros(k, dtype=torch.float64, device=dist.device).index_add_(0, labels, dist)
        mean = (sum_dist / vocab.counts.to(dist.device).clamp(min=1)).cpu()
        mean[vocab.counts.cpu() == 0] = float("nan")
        unk = vocab.frame_tokens(labels, dist) == UNK
        n_seq = len(tokens.video_ids)
        rows = ["token\tid\tcount\tmean_dist\tdominant_aus",
                f"<unk>\t{UNK}\t{int(unk.sum())}\t{float(dist[unk].mean()) if bool(unk.any()) else float('nan'):.4f}\t-",
                f"<start>\t{START}\t{n_seq}\tnan\t-", f"<end>\t{END}\t{n_seq}\tnan\t-"]
    for c, (n, m) in enumerate(zip(counts.tolist(), mean.tolist())):
        rows.append(f"{names[c + N_SPECIAL]}\t{c + N_SPECIAL}\t{n}\t{m:.4f}\t"
                    f"{dominant_aus(centroids[c], vocab.au_names, min_intensity=min_intensity, top=top)}")
    save_text("\n".join(rows) + "\n", path)
