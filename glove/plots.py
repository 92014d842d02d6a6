"""The figures of the embedding stage: GloVe loss curves and a 2-D map of the token vectors.

    embedding_figures(out, {d: (vectors, losses)}, names, dominant_aus, hparams={...})   # from embed.py

- `glove_losses.png`: the objective per epoch for every d (log scale: it falls by orders of magnitude).
- `token_map_d{d}.png`: the vectors (W + W~) projected on their first two principal components, each
  cluster token coloured by its centre's dominant AU (vocab.tsv's `dominant_aus`, the strongest AU at
  or above `dominant_min`; grey: none is), the specials marked and named. Tokens whose vector was not
  learned (`learned` False: imported without a vector) are drawn hollow.
Each figure also goes to TensorBoard (out/tb/figures) as an image, and each d's hyperparameters with its
final loss to out/tb/d{d} (utils/tensorboard.py).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from utils.names import GLOVE_LOSSES_PNG, token_map_file  # noqa: E402
from utils.tensorboard import log_hparams, save_figure  # noqa: E402

SPECIALS = ("<unk>", "<start>", "<end>")


def plot_losses(path: str | Path, losses: dict[int, list[float]], *, writer=None) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for d, curve in sorted(losses.items()):
        if curve:
            ax.plot(np.arange(1, len(curve) + 1), curve, label=f"d = {d}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("GloVe objective J (log scale)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title("GloVe loss")
    save_figure(fig, path, writer=writer, tag="embeddings/losses")


def dominant_label(text: str) -> str:
    """'AU12:2.31,AU06:1.80' -> 'AU12'; '-' or '' -> 'none'."""
    first = (text or "-").split(",")[0].split(":")[0].strip()
    return first.removesuffix("_r") if first not in ("", "-") else "none"


def plot_token_map(path: str | Path, vectors: torch.Tensor, names: list[str], dominant: list[str], *,
                   learned: torch.Tensor | None = None, title: str = "", writer=None, tag: str = "embeddings/map") -> None:
    x = vectors.detach().double().cpu()
    x = x - x.mean(0)
    _, s, v = torch.linalg.svd(x, full_matrices=False)
    xy = (x @ v[:2].T).numpy()                                         # (V, 2) first two principal components
    share = (s[:2] ** 2).sum() / (s ** 2).sum()
    labels = [("special" if n in SPECIALS else dominant_label(a)) for n, a in zip(names, dominant)]
    kinds = sorted({lab for lab in labels if lab not in ("special", "none")})
    palette = [plt.get_cmap("tab20")(i) for i in range(20) if i not in (14, 15)]   # tab20 without its greys
    colours = {lab: palette[i % len(palette)] for i, lab in enumerate(kinds)}
    colours["none"] = (0.82, 0.82, 0.82, 1.0)
    hollow = np.zeros(len(names), bool) if learned is None else ~learned.cpu().numpy().astype(bool)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for lab in ["none"] + kinds:                                       # the AU-less tokens underneath
        sel = np.array([lb == lab for lb in labels]) & ~hollow
        if sel.any():
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=colours[lab], label=f"{lab} ({int(sel.sum())})")
    if hollow.any():  # imported without a vector: all at the treatment's vector (the mean, by default)
        ax.scatter(xy[hollow, 0], xy[hollow, 1], s=70, facecolors="none", edgecolors="black",
                   label=f"no learned vector ({int(hollow.sum())})")
    for i, name in enumerate(names):
        if name in SPECIALS:
            ax.scatter(*xy[i], marker="X", s=60, color="black")
            ax.annotate(name, xy[i], textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    note = f"; {int(hollow.sum())} tokens without a learned vector (circle)" if hollow.any() else ""
    ax.set_title((title + "\n" if title else "") + f"PCA of the token vectors ({share:.0%} of the variance){note}",
                 fontsize=9)
    ax.legend(title="dominant AU", fontsize=7, title_fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, path, writer=writer, tag=tag)


def embedding_figures(out: str | Path, runs: dict[int, tuple[torch.Tensor, list[float]]], names: list[str],
                      dominant: list[str], *, hparams: dict | None = None,
                      learned: dict[int, torch.Tensor] | None = None) -> None:
    """Every figure of an embed.py run (runs: d -> (vectors (V, d), losses per epoch)), to PNG and TensorBoard."""
    from torch.utils.tensorboard import SummaryWriter  # slow import: only when drawing
    out = Path(out)
    with SummaryWriter(str(out / "tb" / "figures")) as writer:
        if any(losses for _, losses in runs.values()):
            plot_losses(out / GLOVE_LOSSES_PNG, {d: losses for d, (_, losses) in runs.items()}, writer=writer)
        for d, (vectors, _) in sorted(runs.items()):
            plot_token_map(out / token_map_file(d), vectors, names, dominant, title=f"d = {d}",
                           learned=None if learned is None else learned.get(d), writer=writer, tag=f"embeddings/map_d{d}")
    if hparams is not None:
        for d, (_, losses) in runs.items():
            with SummaryWriter(str(out / "tb" / f"d{d}")) as writer:
                log_hparams(writer, {**hparams, "d": d},
                            {"hparam/final_loss": losses[-1] if losses else None, "hparam/epochs": len(losses)})
