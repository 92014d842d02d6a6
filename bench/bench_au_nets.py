"""Training throughput of the face-to-AU networks of au_nets.py, with Fung & McDuff's au_cnn (part 1)
measured in the same run as the reference.

    .venv/bin/python bench/bench_au_nets.py                     # the demo sizes, CPU
    .venv/bin/python bench/bench_au_nets.py --paper --device cuda   # the papers' sizes on a GPU

Each line: images per second of Adam training steps (forward, loss, backward, step) after one
warm-up step, the median of `--steps` steps. Prints Markdown rows for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from losses.au_detection import gtle_loss, max_margin, multilabel_ce  # noqa: E402
from models.chu import ChuCNN, StackedLSTM  # noqa: E402
from models.gtle import GTLENet  # noqa: E402
from models.registry import create_model  # noqa: E402


def steps_per_second(model, make_batch, loss_fn, steps: int, device) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        x, y = make_batch()
        t0 = time.perf_counter()
        loss = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--paper", action="store_true", help="the papers' sizes (a GPU)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reference-width", type=float, default=1.0, help="au_cnn channel multiplier (1.0 = Table I)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    B, L = (32, 12) if not a.paper else (196, 12)
    variant, gsize = ("small", 32) if not a.paper else ("paper", 256)
    gw = dict(encoder_widths=(8, 16, 32, 48), classifier_widths=(4, 8, 16, 32, 64)) if not a.paper else {}
    labels = lambda *shape: torch.randint(-1, 2, shape, device=device)
    cases = []
    cnn = ChuCNN(variant=variant).to(device)
    cases.append((f"Chu CNN ({variant}, {cnn.crop} px crops), batch {B}", cnn,
                  lambda: (torch.rand(B, 3, cnn.crop, cnn.crop, device=device), labels(B, L)),
                  lambda m, x, y: multilabel_ce(m(x), y), B))
    T, D = (30, 128) if not a.paper else (1300, 1024)
    lstm = StackedLSTM(input_dim=D, hidden=64 if not a.paper else 256, layers=3).to(device)
    cases.append((f"Chu LSTM (3 layers, {T}-frame subsequences), batch 8 (frames/s)", lstm,
                  lambda: (torch.randn(8, T, D, device=device), labels(8, T, L)),
                  lambda m, x, y: max_margin(m(x), y), 8 * T))
    gb = 16 if not a.paper else 10
    net = GTLENet(n_aus=L, **gw).to(device)
    cases.append((f"GTLE-Net ({gsize} px), batch {gb}", net,
                  lambda: (torch.rand(gb, 3, gsize, gsize, device=device), labels(gb, L)),
                  lambda m, x, y: (lambda o: gtle_loss(o["logits"], y, o["reconstruction"], x)["loss"])(m(x)), gb))
    ref = create_model("au_cnn", n_outputs=L, width=a.reference_width).to(device)
    cases.append((f"reference: Fung & McDuff au_cnn (64 px grey, width {a.reference_width}), batch {B}", ref,
                  lambda: (torch.rand(B, 1, 64, 64, device=device), (torch.rand(B, L, device=device) > 0.5).float()),
                  lambda m, x, y: torch.nn.functional.binary_cross_entropy_with_logits(m(x), y), B))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {a.threads} thread(s)"
    print(f"| network | training images/s ({where}) |\n|---|---|")
    for name, model, batch, loss_fn, per_step in cases:
        model.train()
        print(f"| {name} | {per_step * steps_per_second(model, batch, loss_fn, a.steps, device):.1f} |", flush=True)


if __name__ == "__main__":
    main()
