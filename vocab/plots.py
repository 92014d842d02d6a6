"""The two figures of the vocabulary stage: the elbow curve and the centres' AU profiles."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from utils.io import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_elbow(path: str | Path, results: list[dict], suggested: int) -> None:
    """Mean distance to the nearest centre (the paper's elbow measure) and inertia against k."""
    results = sorted(results, key=lambda r: r["k"])
    ks = [r["k"] for r in results]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [r["mean_dist"] for r in results], "o-", color="C0")
    ax.axvline(suggested, color="C3", ls="--", label=f"knee: k = {suggested}")
    ax.set_xscale("log")
    ax.set_xlabel("k (number of clusters)")
    ax.set_ylabel("mean distance to nearest centre", color="C0")
    inertia = ax.twinx()
    inertia.plot(ks, [r["inertia"] for r in results], "s:", color="C1", alpha=0.6)
    inertia.set_ylabel("inertia (sum of squared distances)", color="C1")
    ax.legend(loc="upper right")
    ax.set_title("Elbow")
    _save(fig, path)


def plot_centroids(path: str | Path, centroids: torch.Tensor, counts: torch.Tensor, au_names: list[str],
                   token_names: list[str], *, top: int = 50, vmax: float = 5.0) -> None:
    """Heatmap of the AU intensities of the `top` most frequent centres (the analogue of the
    paper's Fig. 2), one row per centre, labelled with its token and frame count."""
    counts = counts.cpu()                                       # once: read per row below
    order = torch.argsort(counts, descending=True, stable=True)[:top]
    profile = centroids.float().cpu()[order].numpy()           # (top, D)
    fig, ax = plt.subplots(figsize=(0.45 * len(au_names) + 2.5, 0.22 * len(order) + 1.5))
    image = ax.imshow(profile, aspect="auto", cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(len(au_names)), [a.removesuffix("_r") for a in au_names], rotation=90, fontsize=8)
    ax.set_yticks(range(len(order)), [f"{token_names[i]} ({int(counts[i])})" for i in order.tolist()], fontsize=7)
    ax.set_title(f"AU profiles of the {len(order)} most frequent of {centroids.shape[0]} centres")
    fig.colorbar(image, ax=ax, label="AU intensity")
    _save(fig, path)
