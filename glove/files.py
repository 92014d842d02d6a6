"""The files the Stanford GloVe tools read and write, and the TensorBoard projector view.

- `cooccurrence.bin`: CREC records, C struct {int32 word1; int32 word2; float64 val;} (16 bytes,
  little-endian), ids 1-based in `vocab.txt` order, one record per nonzero (row-major order, not
  shuffled: run Stanford `shuffle` before `glove` for its SGD).
- `vocab.txt`: `token count` per line, line k = id k - 1. Stanford `glove` refuses to save text
  vectors when its vocabulary holds the literal `<unk>` (it appends its own), so that one name can be
  written differently here (`stanford_unk_name` in configs/embed.yaml).
- `vectors_d{d}.txt`: GloVe text format, `token v_1 ... v_d` per line (W + W~), no header.
All are written atomically (temp file + rename).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from utils.artifacts import ArtifactError, Tensor, check_fields, check_match, load_torch, require
from utils.io import atomic_path, save_text
from utils.names import COOCCURRENCE, embeddings_file, in_dir

CREC = np.dtype([("word1", "<i4"), ("word2", "<i4"), ("value", "<f8")])


def write_crec(matrix: torch.Tensor, path: str | Path) -> int:
    """Write the nonzeros of a sparse (V, V) matrix as CREC records; returns their number."""
    matrix = matrix.coalesce().cpu()
    rows, cols = matrix.indices().numpy()
    records = np.empty(rows.size, dtype=CREC)
    records["word1"], records["word2"] = rows + 1, cols + 1
    records["value"] = matrix.values().numpy()
    with atomic_path(path) as tmp:
        records.tofile(tmp)
    return int(rows.size)


def read_crec(path: str | Path, vocab_size: int) -> torch.Tensor:
    """Sparse (V, V) float64 from a CREC file (1-based ids); duplicates are summed."""
    records = np.fromfile(path, dtype=CREC)
    index = torch.from_numpy(np.stack([records["word1"], records["word2"]]).astype(np.int64) - 1)
    return torch.sparse_coo_tensor(index, torch.from_numpy(records["value"].copy()), (vocab_size, vocab_size),
                                   check_invariants=True).coalesce()


def write_vocab_txt(names: list[str], counts: torch.Tensor, path: str | Path, *, unk_name: str | None = None) -> None:
    shown = [unk_name if (unk_name and n == "<unk>") else n for n in names]
    save_text("".join(f"{n} {int(c)}\n" for n, c in zip(shown, counts.tolist())), path)


def write_vectors_txt(names: list[str], vectors: torch.Tensor, path: str | Path) -> None:
    """GloVe text format; `%.6f` as Stanford `glove` writes (embeddings_d*.pt keeps full precision)."""
    values = vectors.detach().cpu().double().numpy()
    lines = [name + " " + " ".join(f"{v:.6f}" for v in row) for name, row in zip(names, values)]
    save_text("\n".join(lines) + "\n", path)


def read_vectors_txt(path: str | Path) -> tuple[list[str], np.ndarray]:
    names, rows = [], []
    for line in Path(path).read_text().splitlines():
        name, *values = line.split(" ")
        names.append(name)
        rows.append([float(v) for v in values])
    return names, np.asarray(rows)


def write_projector(log_dir: str | Path, vectors: torch.Tensor, metadata: list[list[str]], *, tag: str,
                    step: int, header: tuple[str, ...] = ("token", "count", "dominant_aus")) -> None:
    """TensorBoard projector view: one point per token, labelled with its metadata row."""
    from torch.utils.tensorboard import SummaryWriter
    with SummaryWriter(str(log_dir)) as writer:   # a fresh writer: its projector_config lists this view once
        writer.add_embedding(vectors.detach().float().cpu(), metadata=metadata, metadata_header=list(header),
                             tag=tag, global_step=step)


COOCCURRENCE_FIELDS = {"matrix": Tensor(ndim=2, dtype=torch.float64), "fingerprint": str,
                       "tokens_fingerprint": str, "vocab_size": int, "tokens": list, "seconds": float}
EMBEDDING_FIELDS = {"W": Tensor(ndim=2), "W_tilde": Tensor(ndim=2), "b": Tensor(ndim=1), "b_tilde": Tensor(ndim=1),
                    "tokens": list, "fingerprint": str, "tokens_fingerprint": str, "dim": int, "epochs": int,
                    "converged": bool, "losses": list, "seconds": float}


def _stamped(path: Path, obj: dict, what: str, stamp: dict) -> None:
    for key, value in stamp.items():
        check_match(path, key.replace("_", " "), obj[key], value,
                    f"it was made from other tokens: use another out= or delete {path.parent}")


def read_cooccurrence(path: str | Path, *, stamp: dict | None = None) -> dict:
    """The one reader of cooccurrence.pt: a sparse (V, V) float64 matrix and the tokens it counts.
    `stamp` (fingerprint, tokens_fingerprint) are the tokens it must have been counted from."""
    path = in_dir(path, COOCCURRENCE)
    obj = check_fields(load_torch(path, "co-occurrence"), path, "co-occurrence", COOCCURRENCE_FIELDS)
    V, matrix = obj["vocab_size"], obj["matrix"]
    require(matrix.is_sparse and tuple(matrix.shape) == (V, V) and len(obj["tokens"]) == V, path, "co-occurrence",
            f"expected a sparse {V} x {V} matrix and {V} token names, found {tuple(matrix.shape)}")
    matrix = matrix.coalesce()
    require(bool(torch.isfinite(matrix.values()).all()) and not bool((matrix.values() < 0).any()), path,
            "co-occurrence", "counts must be finite and >= 0")
    obj["matrix"] = matrix
    _stamped(path, obj, "co-occurrence", stamp or {})
    return obj


def read_embedding_file(path: str | Path, *, d: int, stamp: dict | None = None) -> dict:
    """The one reader of embeddings_d{d}.pt (the file or its folder): W, W~ (V, d), b, b~ (V,) and
    the fingerprints of the tokens they were trained on, which must match `stamp` when given."""
    path = in_dir(path, embeddings_file(d))
    if not path.exists():
        raise FileNotFoundError(f"embeddings file {path} does not exist; build it with `python embed.py`")
    obj = check_fields(load_torch(path, "embeddings"), path, "embeddings", EMBEDDING_FIELDS)
    V = len(obj["tokens"])
    for key, shape in (("W", (V, d)), ("W_tilde", (V, d)), ("b", (V,)), ("b_tilde", (V,))):
        require(tuple(obj[key].shape) == shape, path, "embeddings",
                f"'{key}' has shape {tuple(obj[key].shape)}, expected {shape} (V = {V} tokens, d = {d})")
    require(obj["dim"] == d and len(obj["losses"]) >= 1, path, "embeddings", f"not the vectors of d={d}")
    _stamped(path, obj, "embeddings", stamp or {})
    return obj


def read_embeddings(path: str | Path, *, d: int, tokens_fingerprint: str, vocab_size: int) -> torch.Tensor:
    """W + W_tilde (V, d) from `embeddings_d{d}.pt` (or the folder holding it), refusing vectors
    built on another vocabulary or of another size."""
    path = in_dir(path, embeddings_file(d))
    if not path.exists():
        raise FileNotFoundError(f"embeddings file {path} does not exist; build it with `python embed.py`")
    emb = check_fields(load_torch(path, "embeddings"), path, "embeddings",
                       {"W": Tensor(ndim=2), "W_tilde": Tensor(ndim=2), "fingerprint": str})
    require(emb["W"].shape == emb["W_tilde"].shape, path, "embeddings", "W and W_tilde differ in shape")
    if emb["fingerprint"] != tokens_fingerprint:
        raise ArtifactError(f"{path}: embeddings were trained on vocabulary {emb['fingerprint']}, but the tokens "
                            f"use vocabulary {tokens_fingerprint}; tokenise with the vocabulary the embeddings came from")
    vectors = (emb["W"] + emb["W_tilde"]).float()  # (V, d)
    if vectors.shape[0] != vocab_size:
        raise ArtifactError(f"{path}: {vectors.shape[0]} embedding rows but the tokens have vocab_size {vocab_size}")
    if vectors.shape[1] != d:
        raise ArtifactError(f"{path}: vectors have {vectors.shape[1]} dimensions, config asks for d={d}")
    return vectors
