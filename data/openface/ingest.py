"""Ingest a folder tree of OpenFace CSVs into one frame corpus.

    python ingest.py src=DIR out=DIR [key=value ...]      (defaults: configs/ingest.yaml)

Every `*.csv` under `src` (sorted by relative path) is read by `data.openface.reader.load_video`; its video
id is the path relative to `src`, POSIX, without `.csv`. The corpus format is `data/corpus.py`;
`out/ingest_report.json` holds every file's report (rows read, kept, dropped by reason, time source,
errors) and the totals.

- Parallel over files (`workers`, 0 = one per CPU) with a progress bar on stderr.
- A bad file (missing columns, no usable time, unreadable) is reported on stderr and in the report
  and skipped; it never stops the others. Content errors are remembered (in the file's part);
  I/O errors are retried by the next run.
- Resumable: each finished file leaves `out/parts/<key>.part` (written atomically), keyed by its
  relative path, size, mtime and the reader config hash, so an interrupted run re-reads only the
  files without a part. A run on the same inputs and config whose corpus is complete (meta.json,
  written last) returns that corpus without reading anything.
- `ingest(src, out, cfg)` does the same from Python and returns the FrameCorpus.
"""
from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import MISSING, DictConfig, OmegaConf
from tqdm import tqdm

from data.openface.corpus import FrameCorpus, read_meta
from data.openface.reader import (DROP_REASONS, ReaderConfig, as_reader_config, load_video, new_report,
                           reader_hash)
from data.openface.resample import sequence_offsets
from utils.config import CONFIG_DIR, ConfigError
from utils import names
from utils.artifacts import check_fields, load_json, parse_json
from utils.io import atomic_path, save_json
from utils.processes import stop_pool, worker_init
from utils.runs import open_run_dir

DEFAULTS = CONFIG_DIR / "ingest.yaml"


@dataclass
class IngestConfig(ReaderConfig):
    """The reader's fields (data/openface.py) plus where and how to run."""
    src: str = MISSING          # folder tree of CSVs
    out: str = MISSING          # corpus directory
    workers: int = 0            # processes; 0 = one per CPU
    progress: bool = True       # progress bar on stderr


def _ingest_config(cfg: Any, src: str | Path, out: str | Path) -> DictConfig:
    """An IngestConfig DictConfig from None, a ReaderConfig/IngestConfig, a dict or a DictConfig."""
    base = OmegaConf.structured(IngestConfig)
    if cfg is None:
        layer = {}
    elif isinstance(cfg, DictConfig):
        layer = OmegaConf.to_container(cfg, resolve=True)
    elif isinstance(cfg, dict):
        layer = dict(cfg)
    else:
        layer = asdict(cfg)
    layer.update(src=str(src), out=str(out))
    try:
        merged = OmegaConf.merge(base, layer)
    except Exception as err:  # OmegaConf names the key
        raise ConfigError(f"bad ingest config: {err}".splitlines()[0]) from None
    as_reader_config(merged)  # checks the reader fields, naming a bad key
    return merged


def _workers(n: int) -> int:
    if n > 0:
        return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def list_csvs(src: Path, exclude: Optional[Path] = None,
              unreadable: Optional[list[str]] = None) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every *.csv under src, sorted; nothing under `exclude`.
    Folders that cannot be listed are appended to `unreadable` (relative paths), not passed over."""
    skip = exclude.resolve() if exclude is not None else None
    if skip is not None and src.resolve() not in (skip, *skip.parents):
        skip = None  # `exclude` is not inside src: nothing to leave out

    def refused(err: OSError) -> None:
        if unreadable is not None:
            unreadable.append(Path(err.filename).relative_to(src).as_posix() if err.filename else str(err))

    found = []
    for folder, dirs, files in os.walk(src, onerror=refused, followlinks=True):
        here = Path(folder)
        if skip is not None and (here.resolve() == skip or skip in here.resolve().parents):
            dirs[:] = []
            continue
        dirs.sort()
        for name in files:
            path = here / name
            if name.endswith(".csv") and path.is_file():
                found.append((path.relative_to(src).as_posix(), path))
    return sorted(found)


def video_id(rel: str) -> str:
    return rel[:-4] if rel.endswith(".csv") else rel


def part_key(rel: str, size: int, mtime_ns: int, rhash: str) -> str:
    return hashlib.sha256(f"{rel}\n{size}\n{mtime_ns}\n{rhash}".encode()).hexdigest()[:24]


# --- one file -------------------------------------------------------------------------------------

# A part is one file's result: 8 bytes of header length, a JSON header (the report, and the name,
# dtype and shape of each array), then the arrays' bytes. Cheaper than npz per file (a corpus of
# 150K videos has 150K parts) and written atomically, so a part that exists is complete.
PART_ARRAYS = ("frames", "timestamps", "gap_before")


def save_part(path: Path, arrays: dict[str, np.ndarray], report: dict) -> None:
    arrays = {k: np.ascontiguousarray(arrays[k]) for k in PART_ARRAYS if k in arrays}
    head = json.dumps({"report": report,
                       "arrays": [[k, a.dtype.str, list(a.shape)] for k, a in arrays.items()]}).encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for a in arrays.values():
            f.write(a.tobytes())


def load_part(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    blob = path.read_bytes()
    size = int.from_bytes(blob[:8], "little")
    head = parse_json(blob[8:8 + size], path, "ingest part")
    arrays, pos = {}, 8 + size
    for name, dtype, shape in head["arrays"]:
        count = int(np.prod(shape))
        arrays[name] = np.frombuffer(blob, dtype=dtype, count=count, offset=pos).reshape(shape)
        pos += count * np.dtype(dtype).itemsize
    if pos != len(blob):
        raise ValueError(f"{path}: {len(blob)} bytes, expected {pos}")
    return arrays, head["report"]


def process_file(job: tuple[str, str, str, ReaderConfig]) -> dict:
    """Read one CSV, write its part; returns its report. Never raises."""
    path, rel, part, reader = job
    cache = True
    try:
        video = load_video(path, reader)
        report = video.report
        arrays = {"frames": video.frames, "timestamps": video.timestamps, "gap_before": video.gap_before}
    except (ValueError, UnicodeDecodeError) as err:   # the file's content: same outcome next time
        report, arrays = new_report(rel), {}
        report["error"] = str(err)
    except Exception as err:  # I/O trouble or a bug: reported, not cached, retried next run
        report, arrays, cache = new_report(rel), {}, False
        report["error"] = f"{type(err).__name__}: {err}"
        report["retry"] = True
    report["file"] = rel
    if cache:
        save_part(Path(part), arrays, report)
    return report


def _run(jobs: list, workers: int, progress: bool) -> dict[str, dict]:
    """Reports of this run's files by part path, processed in `workers` processes."""
    reports = {}
    bar = tqdm(total=len(jobs), unit="file", desc="ingest", disable=not progress, file=sys.stderr)
    kept = 0
    pool = None
    if workers <= 1 or len(jobs) <= 1:
        results = map(process_file, jobs)
    else:  # a worker that dies (killed, out of memory) breaks the pool: an error, not a hang
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        gc.freeze()  # forked workers then leave the parent's objects alone (no copy-on-write by GC)
        pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx,
                                   initializer=worker_init, initargs=(os.getpid(),))  # they die with this process
        results = pool.map(process_file, jobs, chunksize=max(1, min(64, len(jobs) // (workers * 8))))
    try:
        for job, report in zip(jobs, results):
            reports[job[2]] = report
            kept += report["kept"]
            if report["error"]:
                tqdm.write(f"skipped {job[1]}: {report['error']}", file=sys.stderr)
            bar.update(1)
            bar.set_postfix(frames=kept, refresh=False)
    except BaseException:   # Ctrl-C, SIGTERM: the workers stop now, not after their running files
        if pool is not None:
            stop_pool(pool)
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            gc.unfreeze()
    return reports


# --- the corpus -----------------------------------------------------------------------------------

def _totals(reports: list[dict]) -> dict:
    dropped = Counter()
    for r in reports:
        dropped.update(r["dropped"])
    return {"files": len(reports),
            "files_with_frames": sum(r["kept"] > 0 for r in reports),
            "files_empty": sum(bool(r["empty"]) for r in reports),
            "files_failed": sum(r["error"] is not None for r in reports),
            "rows_read": sum(r["rows_read"] for r in reports),
            "kept": sum(r["kept"] for r in reports),
            "dropped": {k: dropped[k] for k in DROP_REASONS},
            "negative_values": sum(r["negative_values"] for r in reports),
            "sequences": sum(r["sequences"] for r in reports),
            "gaps": sum(r["gaps"] for r in reports),
            "time_sources": dict(Counter(r["time_source"] for r in reports if r["time_source"]))}


def read_report(out: str | Path) -> dict:
    """The one reader of ingest_report.json."""
    path = Path(out) / names.INGEST_REPORT
    return check_fields(load_json(path, "ingest report"), path, "ingest report",
                        {"totals": dict, "files": list, "errors": list})


def ingest(src: str | Path, out: str | Path, cfg: Any = None) -> FrameCorpus:
    """Ingest every *.csv under `src` into the corpus directory `out`; returns the corpus (CPU).

    `cfg`: an IngestConfig/ReaderConfig (dataclass or DictConfig) or a dict of their fields; its
    `src`/`out` are replaced by the arguments."""
    conf = _ingest_config(cfg, src, out)
    reader = as_reader_config(conf)
    src_dir = Path(src)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"src={src}: no such folder")
    out_dir = open_run_dir(out, conf, ignore=("workers", "progress"))
    rhash = reader_hash(reader)
    entries = []  # (rel, path, part)
    unreadable: list[str] = []
    for rel, path in list_csvs(src_dir, exclude=out_dir, unreadable=unreadable):
        st = path.stat()
        entries.append((rel, path, out_dir / "parts" / f"{part_key(rel, st.st_size, st.st_mtime_ns, rhash)}.part"))
    inputs = hashlib.sha256("\n".join(e[2].name for e in entries).encode()).hexdigest()[:16]

    meta_path = out_dir / names.CORPUS_META
    if meta_path.exists():
        meta = read_meta(out_dir)
        if meta.get("inputs") == inputs and not meta.get("files_to_retry"):
            return FrameCorpus.load(out_dir)  # same files, same config: reuse

    jobs = [(str(path), rel, str(part), reader) for rel, path, part in entries if not part.exists()]
    fresh = _run(jobs, _workers(conf.workers), conf.progress)

    n_au = len(reader.au_names)
    frames, times, gaps, lengths, seq_video, video_ids, reports = [], [], [], [], [], [], []
    for rel, path, part in entries:
        arrays = {}
        if part.exists():
            try:
                arrays, report = load_part(part)
            except (OSError, ValueError, KeyError, TypeError, IndexError):  # damaged part: read the file again
                print(f"{part}: damaged ingest part; reading {rel} again", file=sys.stderr)
                report = process_file((str(path), rel, str(part), reader))
                arrays = load_part(part)[0] if part.exists() else {}
        else:
            report = fresh[str(part)]
        reports.append(report)
        if arrays.get("frames") is None or len(arrays["frames"]) == 0:
            continue
        offsets = sequence_offsets(arrays["gap_before"], reader.on_gap)
        seq_video += [len(video_ids)] * (len(offsets) - 1)
        lengths.append(np.diff(offsets))
        video_ids.append(video_id(rel))
        frames.append(arrays["frames"])
        times.append(arrays["timestamps"])
        gaps.append(arrays["gap_before"])

    frames_np = np.concatenate(frames) if frames else np.zeros((0, n_au), np.float32)   # (N, n_AU)
    lengths_np = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets_np = np.concatenate([[0], np.cumsum(lengths_np)]).astype(np.int64)         # (S+1,)
    totals = _totals(reports)
    meta = {"au_names": reader.au_names, "fps": reader.fps, "src": str(src),
            "fingerprint": FrameCorpus.compute_fingerprint(frames_np, offsets_np),
            "n_videos": len(video_ids), "n_frames": int(frames_np.shape[0]),
            "n_sequences": int(lengths_np.size), "n_files": len(entries),
            "files_failed": totals["files_failed"], "on_gap": reader.on_gap,
            "files_to_retry": sum(bool(r.get("retry")) for r in reports),
            "reader": asdict(reader), "reader_hash": rhash, "inputs": inputs}
    corpus = FrameCorpus(
        frames=torch.from_numpy(frames_np),
        timestamps=torch.from_numpy(np.concatenate(times) if times else np.zeros(0)),
        gap_before=torch.from_numpy(np.concatenate(gaps) if gaps else np.zeros(0, bool)),
        offsets=torch.from_numpy(offsets_np),
        sequence_video=torch.from_numpy(np.asarray(seq_video, dtype=np.int64)),
        video_ids=video_ids, meta=meta)
    corpus.validate(out_dir)
    meta_path.unlink(missing_ok=True)  # from here until save() ends the directory is unfinished
    for folder in unreadable:
        print(f"{src_dir / folder}: folder cannot be read (permission?); its files are not in the corpus",
              file=sys.stderr)
    totals["unreadable_folders"] = unreadable
    save_json({"totals": totals, "files": reports,
               "errors": [{"file": r["file"], "error": r["error"]} for r in reports if r["error"]]
               + [{"file": f, "error": "folder cannot be read"} for f in unreadable]},
              out_dir / names.INGEST_REPORT)
    corpus.save(out_dir)
    current = {e[2].name for e in entries}
    for stale in (out_dir / "parts").glob("*"):  # old parts and temp files of interrupted writes
        if stale.name not in current:
            stale.unlink()
    return corpus
