"""What embed.py needs of cluster.py's output: `tokens.pt`, checked, with names and dominant AUs.

`tokens.pt` is read with `vocab.tokens.Tokens.load` (which refuses a file without a vocabulary
fingerprint); when `centroids.pt` lies beside it, the tokens must carry that vocabulary's
fingerprint. `vocab.tsv` (optional here) gives each id its token name and dominant AUs; without it
the names are the specials and `c<cluster>` for id = cluster + number of specials. Every problem is
reported with the file and the key, row or column it concerns.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from utils.distributed import Dist, shard_sequences
from vocab.tokens import CENTROIDS_FILE, SPECIALS, TOKENS_FILE, VOCAB_TSV, Tokens, Vocabulary

VOCAB_COLUMNS = ("token", "id", "count", "mean_dist", "dominant_aus")


class TokenFileError(ValueError):
    """tokens.pt / vocab.tsv / centroids.pt that embed.py cannot use; the message names file and key."""


@dataclass
class TokenSet:
    tokens: torch.Tensor        # (M,) int64, sequences concatenated
    offsets: torch.Tensor       # (S+1,) int64
    fingerprint: str            # of the vocabulary (centroids); travels with every artifact
    vocab_size: int
    specials: dict[str, int]
    names: list[str]            # (V,) token name of each id
    dominant_aus: list[str]     # (V,) from vocab.tsv, "" where unknown
    path: Path
    corpus_fingerprint: str

    @property
    def counts(self) -> torch.Tensor:
        """(V,) int64 occurrences of each id."""
        return torch.bincount(self.tokens, minlength=self.vocab_size)

    def shard(self, ctx: Dist, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's run of sequences (utils.distributed.shard_sequences, as FrameCorpus.load takes
        its frames): tokens (M_rank,) and offsets (S_rank+1,) starting at 0, on `device`."""
        mine = shard_sequences(self.offsets, ctx)
        offsets = self.offsets[mine.start:mine.stop + 1]
        tokens = self.tokens[int(offsets[0]):int(offsets[-1])]
        return tokens.to(device), (offsets - offsets[0]).to(device)


def load_tokens(path: str | Path) -> TokenSet:
    """`path` is tokens.pt or the folder holding it (read with vocab.tokens, which cluster.py wrote it with)."""
    path = Path(path)
    file = path / TOKENS_FILE if path.is_dir() else path
    centroids = file.parent / CENTROIDS_FILE
    try:
        # with centroids.pt beside it, the tokens must carry that vocabulary's (recomputed) fingerprint
        vocab = Vocabulary.load(centroids) if centroids.exists() else None
        loaded = Tokens.load(file, vocab=vocab)
    except ValueError as err:
        raise TokenFileError(str(err)) from None
    tokens, offsets, V = loaded.tokens.long(), loaded.offsets.long(), int(loaded.vocab_size)
    if not loaded.fingerprint:
        raise TokenFileError(f"{file}: empty vocabulary fingerprint; refusing tokens of unknown vocabulary")
    if tokens.ndim != 1 or offsets.ndim != 1 or offsets.numel() < 1:
        raise TokenFileError(f"{file}: 'tokens' and 'offsets' must be 1-D")
    if int(offsets[0]) != 0 or int(offsets[-1]) != tokens.numel() or bool((offsets[1:] < offsets[:-1]).any()):
        raise TokenFileError(f"{file}: 'offsets' must rise from 0 to len(tokens) = {tokens.numel()}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= V):
        raise TokenFileError(f"{file}: 'tokens' holds ids outside [0, vocab_size = {V}): "
                             f"{int(tokens.min())}..{int(tokens.max())}")
    if V <= max(SPECIALS.values()):
        raise TokenFileError(f"{file}: vocab_size {V} leaves no room for the special tokens {SPECIALS}")
    names, aus = _read_vocab(file.parent / VOCAB_TSV, V, SPECIALS)
    return TokenSet(tokens=tokens, offsets=offsets, fingerprint=str(loaded.fingerprint), vocab_size=V,
                    specials=dict(SPECIALS), names=names, dominant_aus=aus, path=file,
                    corpus_fingerprint=loaded.corpus_fingerprint)


def _read_vocab(tsv: Path, V: int, specials: dict[str, int]) -> tuple[list[str], list[str]]:
    if not tsv.exists():
        n_special = len(specials)
        by_id = {int(i): name for name, i in specials.items()}
        return [by_id.get(i, f"c{i - n_special}") for i in range(V)], [""] * V
    with open(tsv, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r]
    has_header = bool(rows) and rows[0][:2] == ["token", "id"]
    header, rows = (rows[0], rows[1:]) if has_header else (list(VOCAB_COLUMNS), rows)
    if len(rows) != V:
        raise TokenFileError(f"{tsv}: {len(rows)} rows for a vocabulary of {V} ids")
    col = {name: header.index(name) for name in ("token", "id", "dominant_aus") if name in header}
    names, aus, seen = [], [], set()
    for i, row in enumerate(rows):
        line = i + 1 + has_header
        name = row[col["token"]].strip() if len(row) > col["token"] else ""
        if not name or any(c.isspace() for c in name) or name in seen:
            raise TokenFileError(f"{tsv}, line {line}, column token: {name!r} is empty, has whitespace or repeats")
        if "id" in col and (len(row) <= col["id"] or row[col["id"]].strip() != str(i)):
            raise TokenFileError(f"{tsv}, line {line}, column id: expected {i} (rows in id order)")
        seen.add(name)
        names.append(name)
        aus.append(row[col["dominant_aus"]].strip() if "dominant_aus" in col and len(row) > col["dominant_aus"] else "")
    return names, aus
