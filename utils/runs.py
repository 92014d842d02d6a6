"""Every run writes one self-describing directory: its resolved config first, then its artifacts.

`open_run_dir` makes `out`, writes `config.yaml`, and refuses a directory that holds a run with a
different config, so artifacts of two runs never mix. Re-running with the same config reuses the
directory, which is how interrupted stages resume.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from omegaconf import DictConfig, OmegaConf

from utils.io import save_text


class RunDirError(RuntimeError):
    """`out` holds artifacts of a run with another config."""


def _flat(cfg: DictConfig) -> dict:
    def walk(node, prefix=""):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                yield from walk(v, key + ".")
            else:
                yield key, v
    return dict(walk(OmegaConf.to_container(cfg, resolve=True)))


def open_run_dir(out: str | Path, cfg: DictConfig, ignore: Iterable[str] = ("device", "resume")) -> Path:
    """Create (or reopen) the run directory; keys in `ignore` may change between resumptions."""
    out = Path(out)
    saved = out / "config.yaml"
    if saved.exists():
        old, new = _flat(OmegaConf.load(saved)), _flat(cfg)
        skip = set(ignore)
        diff = sorted(k for k in old.keys() | new.keys()
                      if k.split(".")[0] not in skip and old.get(k) != new.get(k))
        if diff:
            shown = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
            raise RunDirError(f"{out} holds a run with a different config ({shown}). "
                              f"Use another out= or delete {out}.")
    out.mkdir(parents=True, exist_ok=True)
    save_text(OmegaConf.to_yaml(cfg, resolve=True), saved)
    return out
