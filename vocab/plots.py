"""The two figures of the vocabulary stage: the elbow curve and the centres' AU profiles.

Both are written as PNGs and, given a SummaryWriter, as TensorBoard images (utils/tensorboard.py).
- `elbow.png`: mean distance to the nearest centre (the paper's elbow measure) and inertia, each on
  its own axes, against k on a log axis ticked at the swept k; the knee is marked only when one is
  claimed (vocab.elbow.knee: at least 4 points), else the plot says that none is.
- `centroids.png`: the AU intensities of the most frequent centres, then the clusters that can never
  give a token (<unk>: too rare or excluded; NaN centres: never assigned), marked as such. The colour
  scale is a square-root one, so that 0.5 and 1.0 (where most intensities lie) stand apart from 0.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from vocab.elbow import MIN_KNEE_POINTS  # noqa: E402
from utils.tensorboard import save_figure  # noqa: E402

UNK_SHOWN = 20   # at most this many never-token clusters are added below the frequent ones


def plot_elbow(path: str | Path, results: list[dict], suggested: int | None, *, writer=None) -> None:
    results = sorted(results, key=lambda r: r["k"])
    ks = [r["k"] for r in results]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 5.5), sharex=True)
    top.plot(ks, [r["mean_dist"] for r in results], "o-", color="C0")
    top.set_ylabel("mean distance to\nnearest centre (AU units)")
    bottom.plot(ks, [r["inertia"] for r in results], "s-", color="C1")
    bottom.set_ylabel("inertia\n(sum of squared distances)")
    bottom.set_xlabel("k (number of clusters), log scale")
    for ax in (top, bottom):
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
    bottom.xaxis.set_major_locator(FixedLocator(ks))
    bottom.xaxis.set_minor_locator(NullLocator())
    bottom.set_xticks(ks, [str(k) for k in ks], rotation=45 if len(ks) > 6 else 0)
    if suggested is not None:
        for ax in (top, bottom):
            ax.axvline(suggested, color="C3", ls="--")
        top.set_title(f"Elbow: knee at k = {suggested} (of mean distance against log k)")
    else:
        why = (f"{len(ks)} k values: a knee needs at least {MIN_KNEE_POINTS}" if len(ks) < MIN_KNEE_POINTS
               else "the curve has no elbow")
        top.set_title(f"Elbow: no knee claimed ({why})")
    fig.tight_layout()
    save_figure(fig, path, writer=writer, tag="vocabulary/elbow")


def plot_centroids(path: str | Path, centroids: torch.Tensor, counts: torch.Tensor, au_names: list[str],
                   token_names: list[str], *, top: int = 50, unk: torch.Tensor | None = None, vmax: float = 5.0,
                   writer=None) -> None:
    """Heatmap of the AU intensities of the `top` most frequent centres (the analogue of the paper's
    Fig. 2), one row per centre labelled with its token and frame count, then the clusters that can never
    give a token: `unk` (k,) bool (too rare or excluded) and centres with NaN values."""
    k = centroids.shape[0]
    counts = counts.cpu()
    profile_all = centroids.float().cpu()
    never = ~torch.isfinite(profile_all).all(dim=1)
    unk = torch.zeros(k, dtype=torch.bool) if unk is None else unk.cpu().bool()
    order = torch.argsort(counts, descending=True, stable=True)
    frequent = [int(i) for i in order if not (unk[i] or never[i])][:top]
    marked = [int(i) for i in order if unk[i] or never[i]][:UNK_SHOWN]
    rows = frequent + marked
    profile = profile_all[rows].numpy()                                 # (rows, D), NaN rows shown blank
    fig, ax = plt.subplots(figsize=(0.45 * len(au_names) + 3.0, 0.22 * len(rows) + 1.8))
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(profile), aspect="auto", cmap=cmap, interpolation="nearest",
                      norm=PowerNorm(gamma=0.5, vmin=0, vmax=vmax))
    ax.set_xticks(range(len(au_names)), [a.removesuffix("_r") for a in au_names], rotation=90, fontsize=8)
    labels = []
    for i in rows:
        label = f"{token_names[i]} ({int(counts[i])})"
        labels.append(label + (" NaN: never assigned" if never[i] else " <unk>" if unk[i] else ""))
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    for tick, i in zip(ax.get_yticklabels(), rows):
        if unk[i] or never[i]:
            tick.set_color("C3")
    if marked:
        ax.axhline(len(frequent) - 0.5, color="C3", lw=1.5)
    shown = f"the {len(frequent)} most frequent of {k} centres"
    extra = (f"; below the red line, {len(marked)} of the {int((unk | never).sum())} clusters that never give a token"
             if marked else "")
    ax.set_title(f"AU profiles: {shown}{extra}", fontsize=9)
    bar = fig.colorbar(image, ax=ax, label="AU intensity (square-root scale)")
    bar.set_ticks([0, 0.25, 0.5, 1, 2, 3, 4, 5][: 1 + sum(t <= vmax for t in (0.25, 0.5, 1, 2, 3, 4, 5))])
    save_figure(fig, path, writer=writer, tag="vocabulary/centroids")
