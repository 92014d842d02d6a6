"""Ingestion speed on full 714-column OpenFace files, against pandas.read_csv(usecols=...), in one run.

    .venv/bin/python bench/bench_ingest.py                     # 40 files x 3000 rows (100 s at 30 fps)
    .venv/bin/python bench/bench_ingest.py --files 64 --rows 9000 --workers 16

Writes its own files into a temporary folder: OpenFace 2.x FeatureExtraction output with `face_id`
and `", "` separators (how FeatureExtraction writes them), LF line ends, values with OpenFace's
decimals (~4.7 KB a line). Every file is read once before timing (page cache warm for all readers).

Frames per second count CSV rows (video frames at 30 fps) consumed per second.
- pandas:      `pd.read_csv(path, usecols=[frame, face_id, timestamp, confidence, success, 17 AU_r])`
               per file: parsing only, no filtering or resampling.
- read_raw:    our full reader: every row, the same columns, every field count checked.
- load_video:  what ingestion runs per file (default config: filter + 5 fps grid, which reads the
               AU fields of 1 row in 6 but the timestamp of every row).
- ingest:      `data.openface.ingest.ingest` end to end (file listing, workers, parts, corpus save), with
               1 and with N worker processes, from a fresh output folder.
The first three are single-process. Each figure is the best of --repeats rounds, the readers
taking turns within a round; both wall time and CPU time (this process + worker processes) are
shown, as other jobs on a shared machine inflate wall time. Prints a Markdown
table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.openface.ingest import ingest  # noqa: E402
from data.openface.reader import DEFAULT_AUS, ReaderConfig, load_video, read_raw  # noqa: E402
from data.openface.format import openface_columns, write_openface_csv  # noqa: E402


def fake_values(columns: list[str], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, len(columns)) values with plausible magnitudes per column group (they set line length)."""
    v = np.empty((n, len(columns)))
    for j, name in enumerate(columns):
        if name == "frame":
            v[:, j] = np.arange(1, n + 1)
        elif name in ("face_id",):
            v[:, j] = 0
        elif name == "timestamp":
            v[:, j] = np.arange(n) / 30
        elif name == "confidence":
            v[:, j] = rng.choice([0.98, 0.98, 0.98, 0.93, 0.88], n)
        elif name == "success":
            v[:, j] = 1
        elif name.endswith("_r"):
            v[:, j] = np.clip(rng.normal(0.3, 1.0, n), 0, 5)
        elif name.endswith("_c"):
            v[:, j] = rng.integers(0, 2, n)
        elif name.startswith("gaze_"):
            v[:, j] = rng.uniform(-1, 1, n)
        elif name.startswith(("eye_lmk_x", "eye_lmk_y", "x_", "y_")):
            v[:, j] = rng.uniform(150, 650, n)
        elif name.startswith(("eye_lmk_X", "eye_lmk_Y", "X_", "Y_", "pose_T")):
            v[:, j] = rng.uniform(-120, 120, n)
        elif name.startswith(("eye_lmk_Z", "Z_")):
            v[:, j] = rng.uniform(300, 700, n)
        else:  # pose_R, p_*
            v[:, j] = rng.normal(0, 3, n)
    return v


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (ingest workers): on a shared machine a
    steadier measure than wall time, which other jobs inflate."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=0, help="ingest workers (0: one per CPU)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    workers = args.workers or len(os.sched_getaffinity(0))

    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        src = tmp / "src"
        columns = openface_columns(face_id=True, layout="full")
        rng = np.random.default_rng(args.seed)
        paths, size = [], 0
        for i in range(args.files):  # a few distinct files, copied: parsing cost does not depend on values
            path = src / f"s{i % 8:02d}" / f"v{i:04d}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            if i < 4:
                write_openface_csv(path, columns, fake_values(columns, args.rows, rng), spaced=True)
            else:
                shutil.copyfile(paths[i % 4], path)
            size += path.stat().st_size
            paths.append(path)
        rows = args.files * args.rows
        for p in paths:  # warm the page cache for everyone
            p.read_bytes()

        header = paths[0].read_text().split("\n", 1)[0].split(",")
        wanted = {"frame", "face_id", "timestamp", "confidence", "success"} | {f"{a}_r" for a in DEFAULT_AUS}
        usecols = [h for h in header if h.strip() in wanted]  # the names as written, leading space included
        assert len(usecols) == 22

        cfg = ReaderConfig()
        check = pd.read_csv(paths[0], usecols=usecols)
        raw = read_raw(paths[0])
        assert np.array_equal(raw.aus, check[[f" {a}_r" for a in DEFAULT_AUS]].to_numpy(np.float32))

        readers = {
            "pandas.read_csv(usecols=22 columns)": lambda: [pd.read_csv(p, usecols=usecols) for p in paths],
            "read_raw (every row, same columns)": lambda: [read_raw(p) for p in paths],
            "load_video (filter + 5 fps grid)": lambda: [load_video(p, cfg) for p in paths],
        }
        run = iter(range(10 ** 6))
        for w in sorted({1, workers}):
            readers[f"ingest, workers={w} (end to end)"] = (
                lambda w=w: ingest(src, tmp / f"out{next(run)}", {"workers": w, "progress": False}))
        wall = {name: float("inf") for name in readers}
        cpu = dict(wall)
        for _ in range(args.repeats):  # interleaved, so a busy machine slows every reader alike
            for name, fn in readers.items():
                c0, t0 = cpu_seconds(), time.perf_counter()
                fn()
                wall[name] = min(wall[name], time.perf_counter() - t0)
                cpu[name] = min(cpu[name], cpu_seconds() - c0)

        ref = "pandas.read_csv(usecols=22 columns)"
        print(f"\n{args.files} files x {args.rows} rows (714 columns, {size / args.files / 1e6:.1f} MB a file, "
              f"{size / rows / 1e3:.2f} KB a row); best of {args.repeats}; {platform.processor() or platform.machine()}, "
              f"{len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f}, Python "
              f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}\n")
        print("| reader | wall s | frames/s (wall) | vs pandas | CPU s | frames/CPU-s | vs pandas |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in readers:
            print(f"| {name} | {wall[name]:.3f} | {rows / wall[name]:,.0f} | {wall[ref] / wall[name]:.2f}x "
                  f"| {cpu[name]:.3f} | {rows / cpu[name]:,.0f} | {cpu[ref] / cpu[name]:.2f}x |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
