"""python au_nets.py root=runs/demo [methods=[chu,gtle,face_features]] — Chu et al.'s CNN + LSTM + fusion
and GTLE-Net on rendered faces (per-frame F1 per AU, subject-exclusive folds), and the per-frame face
features of the synthetic task B for Table II's "LSTM + face features" row.

Writes to out/ (default ROOT/au_nets):
    config.yaml          the resolved config
    clips.npz            the rendered labelled clips (faces/clips.py)
    stills.npz           rendered stills of other people for the triplets; triplets.csv in FEC's layout
    encoder.pt           the triplet-pretrained GTLE encoder, and its held-out triplet accuracy
    chu/fold{k}.pt       per fold: F1 per AU of the CNN, the LSTM and the fusion
    gtle/{mode}_fold{k}.pt   per fold and ablation (none | frozen | finetune): F1 per AU
    results.md, metrics.json   the F1 tables (mean over folds), written last
and, with face_features, a frame corpus of 16-d face embeddings at face_features.out (train.py's
task_b.face_features). Every finished piece is reused when the command runs again with the same
config (methods may change between runs). Protocol: folds over subjects (KFold(folds, shuffle,
fold_seed), training/protocols.kfold over subject indices), the first ~20 % of each fold's training
subjects validate (early stopping), the fold's subjects test; F1 per frame on the test subjects.
Rendered faces are not BP4D, GFT or DISFA: the F1 here says what the methods do on this renderer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from data.fec import read_fec, write_fec
from data.openface.corpus import FrameCorpus
from faces.au_fit import (ChuTrainConfig, GTLETrainConfig, TripletTrainConfig, f1_per_au, fit_chu, fit_gtle,
                          pretrain_encoder, triplet_accuracy)
from faces.clips import CHU_AUS, FaceClips, presence_labels, render_clips
from faces.face_features import face_feature_corpus
from faces.synthetic import render_faces
from faces.triplets import image_rows, make_triplets
from models.chu import ChuConfig
from models.gtle import ExpressionEncoder, GTLEConfig
from models.registry import create_model
from training.protocols import Split, kfold
from utils.cli import run_script
from utils.config import CONFIG_DIR, ConfigError, load_config
from utils.device import pick_device
from utils.artifacts import ArtifactError, load_json, load_npz, load_torch
from utils.io import save_json, save_text, save_torch
from utils.runs import open_run_dir
from utils.seeds import seed_for

DEFAULTS = CONFIG_DIR / "au_nets.yaml"
METHODS = ("chu", "gtle", "face_features")
ABLATIONS = ("none", "frozen", "finetune")


@dataclass
class ClipsConfig:
    subjects: int = 10
    first_subject: int = 200_000   # rendered people apart from faces.py's pretraining/fine-tuning ones
    videos: int = 2                # per subject
    frames: int = 30               # per video
    size: int = 64                 # rendered side (Chu's small CNN crops 56 of it; GTLE resizes it to gtle.size)
    fps: float = 5.0
    threshold: float = 1.0         # present at intensity >= 1 (FACS A-level, Chu et al. on BP4D)
    max_yaw_deg: float = 40.0      # label 0 ("lost track") beyond this yaw
    elicitation: float = 3.0       # people as expressive as BP4D's under its tasks (faces.synthetic.Variation)
    aus: list[str] = field(default_factory=lambda: list(CHU_AUS))


@dataclass
class ProtocolConfig:
    folds: int = 3                 # Chu et al.: 3 and 10
    val_fraction: float = 0.2      # of each fold's training subjects
    fold_seed: int = 42


@dataclass
class FaceFeaturesConfig:
    corpus: str = "${root}/corpus/task_b"          # the task's AU frame corpus (ingest.py)
    out: str = "${root}/face_features/task_b"      # train.py's task_b.face_features
    max_len: int = 500                             # train.yaml's task_b: the last 500 x 6 frames, every 6th
    stride: int = 6


@dataclass
class AUNetsConfig:
    root: str = "runs/demo"
    out: str = "${root}/au_nets"
    methods: list[str] = field(default_factory=lambda: ["chu", "gtle"])
    device: str = "auto"
    threads: int = 1               # torch CPU threads (1: see training/config.threads_for)
    seed: int = 0
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    chu: ChuConfig = field(default_factory=ChuConfig)
    chu_train: ChuTrainConfig = field(default_factory=ChuTrainConfig)
    gtle: GTLEConfig = field(default_factory=GTLEConfig)
    gtle_train: GTLETrainConfig = field(default_factory=GTLETrainConfig)
    triplets: TripletTrainConfig = field(default_factory=TripletTrainConfig)
    face_features: FaceFeaturesConfig = field(default_factory=FaceFeaturesConfig)


def check_config(cfg) -> None:
    bad = [m for m in cfg.methods if m not in METHODS]
    if bad:
        raise ConfigError(f"methods: {bad} unknown; choose from {list(METHODS)}")
    if cfg.gtle.pretrain not in ABLATIONS:
        raise ConfigError(f"gtle.pretrain={cfg.gtle.pretrain}: must be one of {list(ABLATIONS)}")
    if cfg.gtle.size % 2 ** len(cfg.gtle.encoder_widths):
        raise ConfigError(f"gtle.size={cfg.gtle.size} must be a multiple of 2^{len(cfg.gtle.encoder_widths)} "
                          "(one halving per gtle.encoder_widths entry)")
    if cfg.clips.subjects < cfg.protocol.folds + 2:
        raise ConfigError(f"clips.subjects={cfg.clips.subjects}: {cfg.protocol.folds} folds need at least "
                          f"{cfg.protocol.folds + 2} subjects (train, validation, test)")


def subject_splits(clips: FaceClips, cfg) -> list[Split]:
    """Subject-exclusive folds mapped to clip indices."""
    people = np.unique(clips.subject)
    p = cfg.protocol
    out = []
    for s in kfold(len(people), folds=p.folds, seed=p.fold_seed, val_fraction=p.val_fraction):
        clip_of = lambda part: np.flatnonzero(np.isin(clips.subject, people[part]))
        out.append(Split(train=clip_of(s.train), val=clip_of(s.val), test=clip_of(s.test)))
    return out


def cached(path: Path, compute):
    """A finished step's result, or computed and saved; a damaged cache is reported and recomputed."""
    if path.exists():
        try:
            return load_torch(path, path.stem)
        except ArtifactError as err:
            print(f"{err}; recomputing it")
    result = compute()
    save_torch(result, path)
    return result


def load_clips(cfg, out: Path, log) -> FaceClips:
    path = out / "clips.npz"
    if not path.exists():
        c, t0 = cfg.clips, time.time()
        clips = render_clips(subjects=range(c.first_subject, c.first_subject + c.subjects), videos=c.videos,
                             frames=c.frames, size=c.size, fps=c.fps, seed=cfg.seed, elicitation=c.elicitation)
        clips.save(path)
        log(f"rendered {clips.n_clips} clips, {len(clips.aus)} frames at {c.size}px in {time.time() - t0:.0f}s")
    return FaceClips.load(path)


def pretrained_encoder(cfg, out: Path, device, log):
    """The GTLE encoder trained on rendered triplets (cached in encoder.pt)."""
    g, t = cfg.gtle, cfg.triplets
    encoder = ExpressionEncoder(widths=tuple(g.encoder_widths), embed_dim=g.embed_dim)
    path = out / "encoder.pt"
    if path.exists():
        saved = load_torch(path, "triplet-pretrained encoder")
        encoder.load_state_dict(saved["state"])
        return encoder.to(device), saved
    stills_path = out / "stills.npz"
    if not stills_path.exists():
        t0 = time.time()
        batch = render_faces(n_subjects=t.identities, per_subject=t.per_identity, size=cfg.clips.size, seed=cfg.seed,
                             first_subject=cfg.clips.first_subject + 50_000)
        with open(stills_path, "wb") as f:
            np.savez(f, images=batch.images, aus=batch.aus, subject=batch.subject)
        log(f"rendered {len(batch.images)} stills of {t.identities} people in {time.time() - t0:.0f}s")
    z = load_npz(stills_path, "rendered stills")
    images, aus, person = z["images"], z["aus"], z["subject"]
    write_fec(make_triplets(aus, person, n=t.triplets, seed=cfg.seed, noise=t.noise, min_agreement=t.min_agreement,
                            image_file=stills_path.name), out / "triplets.csv")
    triplets = read_fec(out / "triplets.csv")                       # the one reader, as for FEC itself
    rows = image_rows(triplets)[np.arange(len(triplets))[:, None], triplets.ordered()]   # (n, 3) anchor, pos, neg
    n_test = max(1, len(rows) // 10)
    test, train = rows[:n_test], rows[n_test:]
    before = triplet_accuracy(encoder.to(device), images, test, device, size=g.size)
    losses = pretrain_encoder(encoder, images, train, triplets.types[n_test:], t, device, size=g.size, seed=cfg.seed,
                              log=log)
    after = triplet_accuracy(encoder, images, test, device, size=g.size)
    log(f"triplet accuracy on {n_test} held-out triplets: {before:.3f} untrained -> {after:.3f}")
    saved = {"state": {k: v.cpu() for k, v in encoder.state_dict().items()}, "losses": losses,
             "accuracy_before": before, "accuracy_after": after, "n_triplets": len(rows),
             "types": {k: triplets.types.count(k) for k in sorted(set(triplets.types))}}
    save_torch(saved, path)
    return encoder, saved


def run_chu(cfg, clips, labels, splits, out, device, log) -> list[dict]:
    results = []
    for k, split in enumerate(splits):
        def compute():
            log(f"  Chu et al., fold {k + 1}/{len(splits)}")
            model = create_model("chu_hybrid", n_aus=len(cfg.clips.aus), **OmegaConf.to_container(cfg.chu))
            return fit_chu(model, clips, labels, split, cfg.chu_train, device, margin=cfg.chu.margin,
                           seed=seed_for(cfg.seed, k), log=log)
        results.append(cached(out / "chu" / f"fold{k}.pt", compute))
    return results


def run_gtle(cfg, clips, labels, splits, out, device, log) -> tuple[dict[str, list[dict]], dict]:
    encoder, pretraining = pretrained_encoder(cfg, out, device, log)
    g = cfg.gtle
    results = {}
    for mode in ABLATIONS:
        results[mode] = []
        for k, split in enumerate(splits):
            def compute():
                log(f"  GTLE-Net ({mode}), fold {k + 1}/{len(splits)}")
                torch.manual_seed(seed_for(cfg.seed, k, 1))
                net = create_model("gtle_net", n_aus=len(cfg.clips.aus), encoder_widths=g.encoder_widths,
                                   embed_dim=g.embed_dim, classifier_widths=g.classifier_widths)
                if mode != "none":
                    net.encoder.load_state_dict(encoder.state_dict())
                return fit_gtle(net, clips, labels, split, cfg.gtle_train, device, size=g.size, frozen_encoder=mode == "frozen",
                                rec_weight=g.rec_weight, seed=seed_for(cfg.seed, k), log=log)
            results[mode].append(cached(out / "gtle" / f"{mode}_fold{k}.pt", compute))
    return results, pretraining


def f1_table(columns: dict[str, list[dict]], au_names: list[str]) -> tuple[str, dict]:
    """Markdown: one row per AU and the mean, one column per (method, part): mean F1 over folds."""
    means = {name: torch.stack([r[key] for r in folds]).mean(0) for name, (key, folds) in columns.items()}
    header = "| AU | " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for j, au in enumerate(au_names):
        lines.append(f"| {au} | " + " | ".join(f"{float(m[j]):.1f}" for m in means.values()) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{float(m.mean()):.1f}**" for m in means.values()) + " |")
    return "\n".join(lines) + "\n", {name: {"per_au": dict(zip(au_names, m.tolist())), "mean": float(m.mean())}
                                     for name, m in means.items()}


def main(argv: list[str]) -> None:
    cfg = load_config(AUNetsConfig, argv, DEFAULTS)
    check_config(cfg)
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    out = open_run_dir(cfg.out, cfg, ignore=("device", "threads", "methods"))
    log = print
    metrics: dict = {"device": device.type}
    if {"chu", "gtle"} & set(cfg.methods):
        clips = load_clips(cfg, out, log)
        labels = presence_labels(clips.aus, cfg.clips.aus, threshold=cfg.clips.threshold, yaw=clips.yaw,
                                 max_yaw_deg=cfg.clips.max_yaw_deg)
        splits = subject_splits(clips, cfg)
        base = (labels > 0).sum(0) / np.maximum((labels != 0).sum(0), 1)
        log(f"{len(labels)} frames, {clips.n_clips} clips of {cfg.clips.subjects} subjects; {cfg.protocol.folds} folds; "
            f"base rates " + " ".join(f"{a}={b:.2f}" for a, b in zip(cfg.clips.aus, base)))
        metrics["base_rate"] = dict(zip(cfg.clips.aus, base.tolist()))
        # chance on F1: calling every labelled test frame present scores 2p / (1 + p) at base rate p
        tests = [torch.from_numpy(labels[clips.rows(split.test)]) for split in splits]
        columns = {"every frame present (chance)": ("chance", [{"chance": f1_per_au(torch.ones_like(y, dtype=torch.bool), y)}
                                                               for y in tests])}
        if "chu" in cfg.methods:
            chu = run_chu(cfg, clips, labels, splits, out, device, log)
            columns |= {"Chu CNN": ("cnn", chu), "Chu LSTM": ("lstm", chu), "Chu fusion": ("fusion", chu)}
        if "gtle" in cfg.methods:
            gtle, pretraining = run_gtle(cfg, clips, labels, splits, out, device, log)
            columns |= {f"GTLE {label}": ("gtle", gtle[mode]) for mode, label in
                        (("none", "w/o pretrain"), ("frozen", "GEE frozen"), ("finetune", "full"))}
            metrics["triplets"] = {k: pretraining[k] for k in ("accuracy_before", "accuracy_after", "n_triplets", "types")}
        table, metrics["f1"] = f1_table(columns, list(cfg.clips.aus))
        text = (f"# AU detection on rendered faces: per-frame F1 (%) on the test subjects, mean over "
                f"{cfg.protocol.folds} subject-exclusive folds\n\n"
                f"{cfg.clips.subjects} rendered subjects x {cfg.clips.videos} clips x {cfg.clips.frames} frames at "
                f"{cfg.clips.size}px, present at intensity >= {cfg.clips.threshold}; device {device.type}. "
                "Rendered faces are not BP4D, GFT or DISFA: compare the methods with each other, not with the papers.\n\n"
                + table)
        if "triplets" in metrics:
            t = metrics["triplets"]
            text += (f"\nGTLE encoder pretraining: {t['n_triplets']} rendered triplets ({t['types']}); held-out "
                     f"triplet accuracy {t['accuracy_before']:.3f} untrained -> {t['accuracy_after']:.3f}.\n")
        save_text(text, out / "results.md")
        print("\n" + text)
    if "face_features" in cfg.methods:
        f = cfg.face_features
        if (Path(f.out) / "meta.json").exists():
            log(f"face features: {f.out} exists, kept")
        else:
            encoder, _ = pretrained_encoder(cfg, out, device, log)
            encoder.eval()
            t0 = time.time()
            # rendered at the encoder's input size (supersampled, so as sharp as a downscaled larger face)
            feats = face_feature_corpus(FrameCorpus.load(f.corpus), encoder.embed, size=cfg.gtle.size,
                                        max_len=f.max_len, stride=f.stride, seed=cfg.seed, device=device, log=log)
            feats.save(f.out)
            log(f"face features: {feats.n_frames} frames of {feats.n_sequences} videos -> {f.out} in {time.time() - t0:.0f}s")
    if (out / "metrics.json").exists():
        metrics = load_json(out / "metrics.json", "metrics") | metrics
    save_json(metrics, out / "metrics.json")


if __name__ == "__main__":
    run_script(main, "au_nets.py")
