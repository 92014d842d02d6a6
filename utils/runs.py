"""Every run writes one self-describing directory: its resolved config first, then its artifacts.

`open_run_dir` makes `out`, locks it, writes `config.yaml`, and refuses a directory that holds a
run with a different config, so artifacts of two runs never mix. Re-running with the same config
reuses the directory, which is how interrupted stages resume. A directory holding nothing but its
config (a run that stopped before writing anything) takes the new config.

One writer per directory: `out/.lock` is held with an OS file lock (`fcntl.flock`) for the rest of
the process's life. The kernel releases it when the process ends, however it ends (`kill -9`
included), so a lock is never stale; a second process is refused with the holder's pid, or waits
for it with `wait=True`.
"""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import Iterable

from omegaconf import DictConfig, OmegaConf

from utils import names
from utils.artifacts import load_yaml
from utils.io import save_text

LOCK = ".lock"
_held: dict[Path, int] = {}          # directory -> the open lock file of this process


class RunDirError(RuntimeError):
    """`out` holds artifacts of a run with another config, or another process is writing it."""


def _flat(cfg: DictConfig) -> dict:
    def walk(node, prefix=""):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                yield from walk(v, key + ".")
            else:
                yield key, v
    return dict(walk(OmegaConf.to_container(cfg, resolve=True)))


def lock_dir(out: str | Path, *, wait: bool = False) -> Path:
    """Make `out` and hold its lock until this process ends; refuse (or wait) while another holds it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"out={out} is a file, not a folder: give a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    key = out.resolve()
    if key in _held:
        return out
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        if not wait:
            os.close(fd)
            raise RunDirError(f"{out} is being written by another process (pid {holder}); wait for it to "
                              f"finish or use another out=") from None
        print(f"{out}: waiting for process {holder}, which is writing it", file=sys.stderr, flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd
    return out


def release_dir(out: str | Path) -> None:
    """Give the lock back before the process ends (a sweep hands its run directories to workers)."""
    fd = _held.pop(Path(out).resolve(), None)
    if fd is not None:
        os.close(fd)                 # closing the only descriptor releases the flock


def _remove_stale_temps(out: Path) -> None:
    """Temporary files of a writer killed mid-write (utils.io.atomic_path): with the lock held, no
    other process can be writing them."""
    for tmp in out.rglob(".*.tmp[0-9]*"):
        tmp.unlink(missing_ok=True)


def _holds_results(out: Path) -> bool:
    return any(p.name not in (names.CONFIG, LOCK) for p in out.iterdir())


def open_run_dir(out: str | Path, cfg: DictConfig, ignore: Iterable[str] = ("device", "resume"), *,
                 wait: bool = False) -> Path:
    """Create (or reopen) and lock the run directory; keys in `ignore` may change between resumptions.
    Call it after the config validated: a refused config must never be the one saved."""
    out = lock_dir(out, wait=wait)
    _remove_stale_temps(out)
    saved = out / names.CONFIG
    if saved.exists() and _holds_results(out):
        old, new = _flat(load_yaml(saved, "run config")), _flat(cfg)
        skip = set(ignore)
        diff = sorted(k for k in old.keys() | new.keys()
                      if k.split(".")[0] not in skip and old.get(k) != new.get(k))
        if diff:
            shown = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
            raise RunDirError(f"{out} holds a run with a different config ({shown}). "
                              f"Use another out= or delete {out}.")
    save_text(OmegaConf.to_yaml(cfg, resolve=True), saved)
    return out
