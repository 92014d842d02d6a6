"""The realism report: how alike two or more sets of AU frames are (corpora, or vocabularies' centres).

    python realism.py sets=[CORPUS,REF1,REF2] out=DIR [names=[ours,published,real]] [key=value ...]

Each entry of `sets` is an ingested corpus (`python ingest.py ...`, so at its 5 fps) or a vocabulary
directory (`centroids.pt`, e.g. `cluster.py`'s or an imported one), whose centres count as frames
weighted by their counts. The first set is compared with each of the others. Writes `realism.json`
(every statistic of data/realism.py, the comparisons, the centres' coverage), `realism.md`,
`profile.png`, `corr.png`, `motion.png`, and the same pictures in TensorBoard (`tb/`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING, OmegaConf

from data.realism import compare, frame_stats, load_frame_set, markdown
from data.realism_plots import corr_figure, motion_figure, profile_figure, save_png
from utils.cli import run_script
from utils.config import CONFIG_DIR, ConfigError, load_config
from utils.device import pick_device
from utils.io import save_json, save_text
from utils.runs import open_run_dir
from vocab.coverage import corpus_centres, coverage, nearest_labels


@dataclass
class RealismConfig:
    sets: list[str] = MISSING      # corpus or vocabulary directories; the first is compared with the others
    names: list[str] = field(default_factory=list)  # a column name per set; default: the folder names
    out: str = MISSING
    centres_k: int = 50            # k-means centres summarising a corpus (coverage; label runs without a vocabulary)
    coverage_radius: float = 1.0   # a centre is covered by a centre of the other set this close (raw AU units)
    seed: int = 0
    device: str = "auto"


def main(argv: list[str]) -> None:
    cfg = load_config(RealismConfig, argv, CONFIG_DIR / "realism.yaml")
    for key in ("sets", "out"):
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"{key}= is required")
    if len(cfg.sets) < 2:
        raise ConfigError(f"sets= needs at least two entries (got {len(cfg.sets)})")
    names = list(cfg.names) or [Path(p).name for p in cfg.sets]
    if len(names) != len(cfg.sets):
        raise ConfigError(f"names= has {len(names)} entries for {len(cfg.sets)} sets")
    device = pick_device(cfg.device)
    out = open_run_dir(cfg.out, cfg)

    sets = [load_frame_set(p) for p in cfg.sets]
    for name, fs in zip(names[1:], sets[1:]):
        if fs.au_names != sets[0].au_names:
            raise ValueError(f"{name} has AUs {fs.au_names}, {names[0]} has {sets[0].au_names}")
    # each set's centres: a vocabulary's own, or k-means of a corpus
    centres = [(fs.frames, fs.weights) if not fs.is_sequence else
               corpus_centres(fs.frames, cfg.centres_k, seed=cfg.seed, device=device) for fs in sets]
    # label runs need one set of centres for every corpus: the first vocabulary's, else the first set's
    label_from = next((i for i, fs in enumerate(sets) if not fs.is_sequence), 0)
    stats = [frame_stats(fs, nearest_labels(fs.frames, centres[label_from][0], device) if fs.is_sequence else None)
             for fs in sets]
    comparisons = {}
    for i in range(1, len(sets)):
        c = compare(stats[0], stats[i])
        c["coverage_by_ref"] = coverage(*centres[0], centres[i][0], radius=cfg.coverage_radius)["covered"]
        c["coverage_of_ref"] = coverage(*centres[i], centres[0][0], radius=cfg.coverage_radius)["covered"]
        c["coverage"] = {"by_ref": coverage(*centres[0], centres[i][0], radius=cfg.coverage_radius),
                         "of_ref": coverage(*centres[i], centres[0][0], radius=cfg.coverage_radius)}
        comparisons[f"{names[0]} vs {names[i]}"] = c

    report = {"names": names, "sets": list(cfg.sets), "label_centres": names[label_from],
              "stats": dict(zip(names, stats)), "comparisons": comparisons}
    save_json(report, out / "realism.json")
    save_text(markdown(names, stats, comparisons), out / "realism.md")
    from torch.utils.tensorboard import SummaryWriter  # slow import
    with SummaryWriter(str(out / "tb")) as writer:
        for tag, make in (("profile", profile_figure), ("corr", corr_figure), ("motion", motion_figure)):
            fig = make(names, stats)
            if fig is not None:
                save_png(fig, out / f"{tag}.png")
                writer.add_figure(f"realism/{tag}", fig)   # closes the figure
        for key, c in comparisons.items():
            for fig_name in ("profile_corr", "corr_matrix_corr", "au_sum_ratio", "motion_ratio"):
                if fig_name in c:
                    writer.add_scalar(f"realism/{key}/{fig_name}", c[fig_name], 0)
    print((out / "realism.md").read_text())
    print(f"[realism] -> {out}")


if __name__ == "__main__":
    run_script(main, "realism.py")
