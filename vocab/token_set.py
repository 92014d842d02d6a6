"""What embed.py needs of cluster.py's output: `tokens.pt`, checked, with names and dominant AUs.

`tokens.pt` is read with `vocab.tokens.Tokens.load`, its one reader (every field checked, a file
without a vocabulary fingerprint refused); when `centroids.pt` lies beside it, the tokens must carry that vocabulary's
fingerprint. `vocab.tsv` (optional here) gives each id its token name and dominant AUs; without it
the names are the specials and `c<cluster>` for id = cluster + number of specials. Every problem is
reported with the file and the key, row or column it concerns.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from utils.artifacts import ArtifactError
from utils.names import in_dir
from utils.distributed import Dist, shard_sequences
from vocab.tokens import CENTROIDS_FILE, SPECIALS, TOKENS_FILE, VOCAB_TSV, Tokens, Vocabulary

VOCAB_COLUMNS = ("token", "id", "count", "mean_dist", "dominant_aus")


class TokenFileError(ArtifactError):
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
    """`path` is tokens.pt or the folder holding it (read by `Tokens.load`, the one reader of tokens.pt)."""
    file = in_dir(path, TOKENS_FILE)
    centroids = file.parent / CENTROIDS_FILE
    # with centroids.pt beside it, the tokens must carry that vocabulary's (recomputed) fingerprint
    try:
        vocab = Vocabulary.load(centroids) if centroids.exists() else None
        loaded = Tokens.load(file, vocab=vocab)
    except ArtifactError as err:
        raise TokenFileError(str(err)) from None
    V = int(loaded.vocab_size)
    names, aus = _read_vocab(file.parent / VOCAB_TSV, V, SPECIALS)
    return TokenSet(tokens=loaded.tokens, offsets=loaded.offsets, fingerprint=str(loaded.fingerprint), vocab_size=V,
                    specials=dict(SPECIALS), names=names, dominant_aus=aus, path=file,
                    corpus_fingerprint=loaded.corpus_fingerprint)


def _tsv_rows(tsv: Path) -> list[list[str]]:
    try:
        with open(tsv, newline="", encoding="utf-8") as f:
            return [r for r in csv.reader(f, delimiter="\t") if r]
    except (UnicodeDecodeError, csv.Error) as err:
        raise TokenFileError(f"{tsv}: not a facevocab vocabulary table ({type(err).__name__}: not UTF-8 text "
                             f"of tab-separated rows)") from None


def _read_vocab(tsv: Path, V: int, specials: dict[str, int]) -> tuple[list[str], list[str]]:
    if not tsv.exists():
        n_special = len(specials)
        by_id = {int(i): name for name, i in specials.items()}
        return [by_id.get(i, f"c{i - n_special}") for i in range(V)], [""] * V
    rows = _tsv_rows(tsv)
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
