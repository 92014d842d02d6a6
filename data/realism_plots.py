"""The realism report's pictures: per-AU profile bars, the correlation matrices side by side, motion."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils.io import atomic_path  # noqa: E402


def _short(au_names: list[str]) -> list[str]:
    return [a.removesuffix("_r") for a in au_names]


def _bars(ax, names: list[str], values: list[list[float]], au_names: list[str], ylabel: str) -> None:
    width = 0.8 / len(values)
    x = np.arange(len(au_names))
    for i, (name, v) in enumerate(zip(names, values)):
        ax.bar(x + (i - (len(values) - 1) / 2) * width, v, width, label=name)
    ax.set_xticks(x, _short(au_names), rotation=90, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def profile_figure(names: list[str], stats: list[dict]):
    """Per-AU mean and share of frames >= 1, one bar per set."""
    au = stats[0]["au_names"]
    fig, axes = plt.subplots(2, 1, figsize=(0.5 * len(au) + 3, 6), sharex=True)
    _bars(axes[0], names, [s["au_mean"] for s in stats], au, "mean intensity")
    _bars(axes[1], names, [s["au_ge_1"] for s in stats], au, "share of frames >= 1")
    axes[0].set_title("Per-AU profile")
    fig.tight_layout()
    return fig


def corr_figure(names: list[str], stats: list[dict]):
    """The AU-AU correlation matrices side by side, on one diverging scale."""
    au = _short(stats[0]["au_names"])
    fig, axes = plt.subplots(1, len(stats), figsize=(4.6 * len(stats) + 1, 4.6), squeeze=False)
    for ax, name, s in zip(axes[0], names, stats):
        image = ax.imshow(np.asarray(s["corr"]), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_xticks(range(len(au)), au, rotation=90, fontsize=7)
        ax.set_yticks(range(len(au)), au, fontsize=7)
        ax.set_title(name, fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="Pearson r")
    return fig


def motion_figure(names: list[str], stats: list[dict]):
    """Mean |frame-to-frame change| per AU of the sets that have sequences."""
    have = [(n, s) for n, s in zip(names, stats) if "motion" in s]
    if not have:
        return None
    au = stats[0]["au_names"]
    fig, ax = plt.subplots(figsize=(0.5 * len(au) + 3, 3.2))
    _bars(ax, [n for n, _ in have], [s["motion"] for _, s in have], au, "mean |x[t+1] - x[t]|")
    ax.set_title("Frame-to-frame change at the corpus rate")
    fig.tight_layout()
    return fig


def save_png(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
