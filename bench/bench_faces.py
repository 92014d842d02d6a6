"""Face stage throughput on this machine: rendering, cropping, and the AU CNN's training images/s.

    .venv/bin/python bench/bench_faces.py [--frames 60] [--steps 8]

References measured in the same run: PyAV encoding of the rendered frames (the cost next to
rendering in the dataset builder) and the CNN's inference images/s next to training.
One process; torch threads as given (1 = the faces.py default on the CPU).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

import models  # noqa: F401
from faces.crops import CropConfig, FaceCropper
from faces.fit import masked_bce, predict
from faces.augment import normalise
from faces.render import FaceRenderer
from faces.synthetic import render_video
from faces.video import write_video
from models.registry import create_model


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    t0, c0 = time.perf_counter(), cpu_s()
    out = fn()
    return out, time.perf_counter() - t0, cpu_s() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.frames
    print(f"# bench_faces: {os.cpu_count()} CPUs (shared), torch threads {args.threads}, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}\n")
    print("| what | size | frames/s (wall) | frames/s per CPU-second |\n|---|---|---|---|")
    for size in (64, 128, 256):
        v, wall, cpu = timed(lambda: render_video(seed=0, subject=1, video=0, n_frames=n, renderer=FaceRenderer(size=size)))
        print(f"| render (supersample 2) | {size} | {n / wall:.1f} | {n / cpu:.1f} |")
        with tempfile.TemporaryDirectory() as tmp:
            _, wall, cpu = timed(lambda: write_video(Path(tmp) / "v.avi", v.frames, fps=20.0))
        print(f"| reference: PyAV mpeg4 encode | {size} | {n / wall:.1f} | {n / cpu:.1f} |")
        if size == 128:
            _, wall, cpu = timed(lambda: FaceCropper(CropConfig()).crop_all(v.frames))
            print(f"| Haar detect + eye-align + crop to 64 | {size} | {n / wall:.1f} | {n / cpu:.1f} |")
    print("\n| network | device | train images/s (batch 32, augmented) | reference: inference images/s |\n|---|---|---|---|")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        for width, fc in ((1.0, 1024), (0.125, 128)):
            net = create_model("au_cnn", n_outputs=17, width=width, fc=fc).to(dev)
            opt = torch.optim.Adam(net.parameters(), lr=1e-4)
            x = torch.randint(0, 256, (32, 1, 64, 64), dtype=torch.uint8, device=dev)
            y = (torch.rand(32, 17, device=dev) < 0.3).float()

            def step():
                loss = masked_bce(net(normalise(x)), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            step()
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            if dev == "cuda":
                torch.cuda.synchronize()
            train = 32 * args.steps / (time.perf_counter() - t0)
            xs = x.repeat(4, 1, 1, 1)
            predict(net, xs)
            t0 = time.perf_counter()
            for _ in range(args.steps // 2 or 1):
                predict(net, xs)
            if dev == "cuda":
                torch.cuda.synchronize()
            infer = len(xs) * (args.steps // 2 or 1) / (time.perf_counter() - t0)
            print(f"| au_cnn width {width} fc {fc} | {dev} | {train:.0f} | {infer:.0f} |")


if __name__ == "__main__":
    main()
