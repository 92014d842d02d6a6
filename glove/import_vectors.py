"""Vectors trained elsewhere, for a vocabulary of ours: one importer, one reader per file format.

    found = read_vectors(path)                      # VectorFile: names (or None) and (n, d) values
    vectors, learned, report = align(found, vocab_names, row_names=..., aliases=..., missing="mean")

Formats (`format=auto` tells them apart by the file):
- `published_csv`: the paper authors' `glove_embeddings_<d>_*.csv`: n rows of d comma-separated values,
  no names; row i is the token with published id i (`row_names`, from their token index).
- `glove_txt`: Stanford GloVe text, `name v_1 ... v_d` per line, no header (our `vectors_d{d}.txt`).
- `word2vec_txt`: the same with a first line `n d` (gensim's text format, Stanford's -write-header).
- `word2vec_bin`: `n d\\n`, then per vector its name, a space, d little-endian float32 (and an optional
  newline), as gensim's `save_word2vec_format(binary=True)` writes.

The vocabulary check (`align`): vectors are matched to our tokens by name, `aliases` first (Stanford's
`vocab.txt` calls our `<unk>` `<raw_unk>`: see glove/files.py). A cluster name the vocabulary does not
have (`c1500` for k = 1000) means the vectors belong to another vocabulary: an error; a repeated name,
a non-finite value or no token found at all too. Other names (Stanford's own appended `<unk>`, the
average of its rarest words; word2vec's `</s>`) are listed and not used. Our tokens without a vector
are listed and get `missing`: `mean` (the mean imported vector, default), `zero`, or `random` (normal
with each dimension's mean and standard deviation, seeded). `learned` marks the tokens whose vector
was imported: train.py's `bilstm_glove` starts every token from its vector and, unless
`bilstm_glove.freeze=true`, trains all of them, so the missing ones learn from their start point.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = ("auto", "published_csv", "glove_txt", "word2vec_txt", "word2vec_bin")
MISSING = ("mean", "zero", "random")
_CLUSTER = re.compile(r"c\d+")


@dataclass
class VectorFile:
    path: Path
    format: str
    names: list[str] | None   # (n,) token names; None for published_csv (rows are published ids)
    vectors: np.ndarray       # (n, d) float64


def detect_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4096)
    first = head.split(b"\n", 1)[0].strip()
    fields = first.split()
    if len(fields) == 2 and all(x.isdigit() for x in fields):
        return "word2vec_bin" if path.suffix == ".bin" or b"\x00" in head else "word2vec_txt"
    if b"," in first:
        return "published_csv"
    return "glove_txt"


def _floats(path: Path, line: int, cells: list[str], d: int | None) -> list[float]:
    if d is not None and len(cells) != d:
        raise ValueError(f"{path}, line {line}: {len(cells)} values, expected {d}")
    try:
        return [float(x) for x in cells]
    except ValueError:
        raise ValueError(f"{path}, line {line}: a value is not a number") from None


def _read_text(path: Path, *, header: bool) -> VectorFile:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    n = d = None
    if header:
        n, d = (int(x) for x in lines[0].split())
        lines = lines[1:]
        if len(lines) != n:
            raise ValueError(f"{path}: header says {n} vectors, the file has {len(lines)}")
    names, rows = [], []
    for line, text in enumerate(lines, 2 if header else 1):
        name, *cells = text.rstrip().split(" ")
        rows.append(_floats(path, line, cells, d if d is not None else (len(rows[0]) if rows else None)))
        names.append(name)
    return VectorFile(path, "word2vec_txt" if header else "glove_txt", names, np.asarray(rows, dtype=np.float64))


def _read_word2vec_bin(path: Path) -> VectorFile:
    data = path.read_bytes()
    end = data.index(b"\n")
    n, d = (int(x) for x in data[:end].split())
    pos, names, rows = end + 1, [], np.empty((n, d), dtype=np.float64)
    for i in range(n):
        while pos < len(data) and data[pos:pos + 1] in (b"\n", b" "):
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space + 1 + 4 * d > len(data):
            raise ValueError(f"{path}: vector {i + 1} of {n} is cut off")
        names.append(data[pos:space].decode("utf-8"))
        rows[i] = np.frombuffer(data, dtype="<f4", count=d, offset=space + 1)
        pos = space + 1 + 4 * d
    return VectorFile(path, "word2vec_bin", names, rows)


def _read_published_csv(path: Path) -> VectorFile:
    rows, d = [], None
    for line, text in enumerate(path.read_text().splitlines(), 1):
        if text.strip():
            rows.append(_floats(path, line, text.split(","), d))
            d = len(rows[0])
    return VectorFile(path, "published_csv", None, np.asarray(rows, dtype=np.float64))


def read_vectors(path: str | Path, format: str = "auto") -> VectorFile:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"import={path}: no such file")
    if format not in FORMATS:
        raise ValueError(f"format={format!r}: expected one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if format == "auto" else format
    readers = {"published_csv": _read_published_csv, "glove_txt": lambda p: _read_text(p, header=False),
               "word2vec_txt": lambda p: _read_text(p, header=True), "word2vec_bin": _read_word2vec_bin}
    found = readers[fmt](path)
    if found.vectors.ndim != 2 or found.vectors.shape[0] == 0:
        raise ValueError(f"{path}: no vectors read (format {fmt})")
    bad = np.flatnonzero(~np.isfinite(found.vectors).all(axis=1))
    if bad.size:
        raise ValueError(f"{path}: vector {int(bad[0]) + 1} holds NaN or inf ({bad.size} such rows)")
    return found


def published_files(folder: str | Path) -> dict[int, Path]:
    """d -> the published `glove_embeddings_<d>_*.csv` in `folder` (highest _v<N> when several)."""
    best: dict[int, tuple[int, Path]] = {}
    for path in Path(folder).glob("glove_embeddings_*_*.csv"):
        m = re.fullmatch(r"glove_embeddings_(\d+)_.*?(?:_v(\d+))?", path.stem)
        if m:
            d, version = int(m.group(1)), int(m.group(2) or 1)
            if d not in best or version > best[d][0]:
                best[d] = (version, path)
    return {d: p for d, (_, p) in sorted(best.items())}


def align(found: VectorFile, vocab_names: list[str], *, row_names: dict[int, str] | None = None,
          aliases: dict[str, str] | None = None, missing: str = "mean", seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """(V, d) float32 vectors in our token order, (V,) bool `learned`, and the report (module docstring)."""
    if missing not in MISSING:
        raise ValueError(f"missing={missing!r}: expected one of {', '.join(MISSING)}")
    n, d = found.vectors.shape
    if found.names is None:
        if row_names is None:
            raise ValueError(f"{found.path}: rows without names need the token index (row_names)")
        unnamed = [i for i in range(n) if i not in row_names]
        if unnamed:
            raise ValueError(f"{found.path}: {n} rows but the token index names ids up to {max(row_names)}; "
                             f"row {unnamed[0]} has no token")
        names = [row_names[i] for i in range(n)]
    else:
        names = list(found.names)
    aliases = dict(aliases or {})
    aliased = {a for a in aliases if a in names}
    wanted = set(vocab_names)
    where: dict[str, int] = {}
    ignored: list[str] = []
    for i, name in enumerate(names):
        ours = aliases.get(name, name)
        if name not in aliases and aliases and ours in {aliases[a] for a in aliased}:
            ignored.append(name)          # e.g. Stanford's own <unk> beside our aliased one
            continue
        if ours in where:
            raise ValueError(f"{found.path}: token {ours!r} has two vectors (rows {where[ours] + 1} and {i + 1})")
        if ours in wanted:
            where[ours] = i
        elif _CLUSTER.fullmatch(ours):
            raise ValueError(f"{found.path}: token {ours!r} is not in the vocabulary (V = {len(vocab_names)}): "
                             f"these vectors were trained on another vocabulary")
        else:
            ignored.append(name)
    if not where:
        raise ValueError(f"{found.path}: none of its {n} names is a token of the vocabulary "
                         f"(its first: {names[:3]}; ours: {vocab_names[:4]} ...)")
    learned = np.array([t in where for t in vocab_names])
    out = np.empty((len(vocab_names), d), dtype=np.float64)
    rows = [where[t] for t in vocab_names if t in where]
    out[learned] = found.vectors[rows]
    have = found.vectors[rows]                                      # (n_learned, d)
    if missing == "mean":
        fill = np.broadcast_to(have.mean(axis=0), (int((~learned).sum()), d))
    elif missing == "zero":
        fill = np.zeros((int((~learned).sum()), d))
    else:
        rng = np.random.default_rng(seed)
        fill = rng.normal(have.mean(axis=0), have.std(axis=0), ((~learned).sum(), d))
    out[~learned] = fill
    report = {"file": str(found.path), "format": found.format, "rows": n, "dim": d,
              "tokens": len(vocab_names), "imported": int(learned.sum()),
              "without_vector": {"count": int((~learned).sum()), "tokens": [t for t in vocab_names if t not in where],
                                 "treatment": missing},
              "not_used": {"count": len(ignored), "names": ignored[:50]},
              "aliases": {a: aliases[a] for a in sorted(aliased)}}
    return out.astype(np.float32), learned, report
