"""Reading artifacts safely: the only `torch.load`, `np.load`, `json.load` and YAML load of a file
a stage hands to another, and one declarative check of what was read.

    obj = load_torch(path, "tokens")                         # weights_only=True: tensors and plain values only
    check_fields(obj, path, "tokens", {"tokens": Tensor(ndim=1, dtype=torch.int64), "video_ids": list})
    check_match(path, "vocabulary", obj["fingerprint"], vocab.fingerprint, "re-run cluster.py with it")

Every failure is an `ArtifactError` (a ValueError, so utils.cli.run_script ends the script with one
line and exit status 2) whose message starts with the file: `tokens.pt: not a facevocab tokens file
(truncated zip archive)`. A `.pt` file holding anything but tensors and plain containers (a pickled
object whose loading would run code) is refused unread. Each artifact's own reader (in the package
that writes it) calls these primitives and adds the checks only it knows (shapes that must agree,
ids in range).
"""
from __future__ import annotations

import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf


class ArtifactError(ValueError):
    """A file that a stage cannot use: missing a piece, damaged, or made from other inputs."""


class MismatchError(ArtifactError):
    """A sound file made from other inputs than expected (another vocabulary, corpus, tokens)."""


def _damage(path: Path) -> str:
    """Why `torch.load` could not read the file, in words."""
    head = path.read_bytes()[:4] if path.stat().st_size else b""
    if not head:
        return "empty file"
    if head != b"PK\x03\x04":
        return "not a zip archive"
    return "truncated zip archive"


def _exists(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {what} file there" if not path.exists()
                                else f"{path}: is a folder, not a {what} file")


def load_torch(path: str | Path, what: str) -> Any:
    """`torch.load(weights_only=True)` on CPU; any damage or forbidden content is an ArtifactError."""
    path = Path(path)
    _exists(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # torch warns about pickle protocols before refusing
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        reason = ("holds Python objects, not only tensors and plain values: refused without loading them"
                  if _damage(path) == "truncated zip archive" else _damage(path))
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError, TypeError):
        reason = _damage(path)
    raise ArtifactError(f"{path}: not a facevocab {what} file ({reason})")


def load_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    _exists(path, what)
    return parse_json(path.read_bytes(), path, what)


def parse_json(blob: bytes, path: str | Path, what: str) -> Any:
    """JSON held in bytes read from `path` (a whole file, or a header inside one)."""
    try:
        return json.loads(blob)
    except UnicodeDecodeError:
        reason = "not text"
    except json.JSONDecodeError as err:
        reason = f"not valid JSON: {err.msg} at line {err.lineno}" if blob else "empty file"
    raise ArtifactError(f"{path}: not a facevocab {what} file ({reason})")


def load_yaml(path: str | Path, what: str) -> DictConfig:
    path = Path(path)
    _exists(path, what)
    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ArtifactError(f"{path}: not a valid {what} (malformed YAML{where})") from None
    if not isinstance(cfg, DictConfig):
        raise ArtifactError(f"{path}: not a valid {what} (a YAML mapping of keys was expected)")
    return cfg


def load_npy(path: str | Path, what: str, *, mmap: bool = False) -> np.ndarray:
    """`np.load(allow_pickle=False)`, memory-mapped with `mmap`."""
    path = Path(path)
    _exists(path, what)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        text = str(err)
        reason = ("holds Python objects: refused" if "pickle" in text or "object" in text.lower()
                  else "empty file" if isinstance(err, EOFError) else "truncated or not a .npy array")
    raise ArtifactError(f"{path}: not a facevocab {what} array ({reason})")


# --- what a loaded object must hold --------------------------------------------------------------

@dataclass(frozen=True)
class Tensor:
    """A field that must be a tensor, of `ndim` dimensions and one of `dtype` (None: any)."""
    ndim: int | None = None
    dtype: torch.dtype | tuple[torch.dtype, ...] | None = None

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, torch.Tensor):
            return f"is {type(value).__name__}, not a tensor"
        if self.ndim is not None and value.ndim != self.ndim:
            return f"has shape {tuple(value.shape)}, expected {self.ndim} dimension(s)"
        allowed = (self.dtype,) if isinstance(self.dtype, torch.dtype) else self.dtype
        if allowed is not None and value.dtype not in allowed:
            return f"has dtype {value.dtype}, expected {' or '.join(map(str, allowed))}"
        if value.is_sparse:
            return None
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return "holds NaN or inf"
        return None


def _type_problem(value: Any, kind: type | tuple[type, ...]) -> str | None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return None                                   # an int is a fine float
    if isinstance(value, bool) and bool not in kinds:
        return "is a bool"
    return None if isinstance(value, kinds) else f"is {type(value).__name__}, expected {'/'.join(k.__name__ for k in kinds)}"


def check_fields(obj: Any, path: str | Path, what: str, spec: Mapping[str, Tensor | type | tuple]) -> dict:
    """`obj` must be a dict holding every key of `spec`, each of its kind (a `Tensor` spec or Python type(s))."""
    if not isinstance(obj, dict):
        raise ArtifactError(f"{path}: not a facevocab {what} file (holds a {type(obj).__name__}, not a dict)")
    missing = [key for key in spec if key not in obj]
    if missing:
        raise ArtifactError(f"{path}: not a facevocab {what} file (missing {', '.join(missing)})")
    for key, kind in spec.items():
        problem = kind.problem(obj[key]) if isinstance(kind, Tensor) else _type_problem(obj[key], kind)
        if problem:
            raise ArtifactError(f"{path}: damaged {what} file ('{key}' {problem})")
    return obj


def require(ok: bool, path: str | Path, what: str, problem: str) -> None:
    """A check only the reader knows (shapes that must agree, ids in range)."""
    if not ok:
        raise ArtifactError(f"{path}: damaged {what} file ({problem})")


def check_match(path: str | Path, name: str, found: Any, expected: Any, hint: str) -> None:
    """A fingerprint (or other stamp) the file must carry: the message says both and what to do."""
    if expected is not None and found != expected:
        raise MismatchError(f"{path}: made with {name} {found}, not with the expected {name} {expected}; {hint}")
