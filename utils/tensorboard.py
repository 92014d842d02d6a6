"""Pictures and hyperparameters into a run's files and its TensorBoard events, by one helper each.

    save_figure(fig, out / "elbow.png", writer=writer, tag="vocabulary/elbow")
    log_hparams(writer, {"k": 1000, ...}, {"hparam/mean_dist": 0.71, ...})

Every figure a stage draws is written as a PNG (atomically) and, when a SummaryWriter is given, as a
TensorBoard image under `tag`. Hyperparameters go into the same run (`run_name="."`, see STYLE.md), with
metric keys under `hparam/` so that they never collide with scalar tags.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from utils.io import atomic_path  # noqa: E402


def save_figure(fig, path: str | Path, *, writer=None, tag: str | None = None, step: int = 0, dpi: int = 120) -> None:
    """Write `fig` to `path` (PNG), and to TensorBoard as an image when `writer` is given; close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    if writer is not None:
        writer.add_figure(tag or Path(path).stem, fig, global_step=step, close=False)
        writer.flush()
    plt.close(fig)


def _plain(value):
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def log_hparams(writer, hparams: dict, metrics: dict) -> None:
    """The run's hyperparameters and headline metrics (keys `hparam/...`) in its own TensorBoard run."""
    if writer is None:
        return
    bad = [key for key in metrics if not key.startswith("hparam/")]
    if bad:
        raise ValueError(f"hparams metric keys must start with 'hparam/' (they would collide with scalars): {bad}")
    writer.add_hparams({k: _plain(v) for k, v in hparams.items()},
                       {k: float(v) for k, v in metrics.items() if v is not None}, run_name=".")
    writer.flush()
