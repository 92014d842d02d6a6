"""Fit the generator's calibration to a real reference: `python synth.py calibrate=DIR [calibrate_motion=DIR] out=DIR`.

The reference for levels is a corpus (`ingest.py` output, at its 5 fps) or a vocabulary's centres
weighted by their counts (e.g. the paper's published 1000 centres); the reference for motion must
be a corpus (frame-to-frame change needs sequences) and defaults to the levels reference.

1. States: weighted k-means (k = `n_states`, k-means++ then Lloyd, NumPy) of the reference frames;
   each centre is a state prototype, its weight the share of frames it should hold.
2. Resting level: the weighted 20th percentile of each AU (OpenFace has a non-zero floor on
   AU04, AU07, AU10, AU17, AU26 in real video).
3. Then `rounds` of: simulate a probe corpus (pretrain kind, sampled at 5 fps as ingestion keeps
   it), and move (a) each AU's offset by the gap between the reference's mean and the probe's,
   (b) each AU's jitter by the ratio of the reference's mean |frame-to-frame change| to the probe's,
   (c) each state's entry preference by the log-ratio of its target share to its probe share
   (from the hidden states). Each step is damped; the last probe's figures are recorded in `fit`.
Writes `calibration.yaml` (data/synth/calibration.py's fields; use it as `calibration_file=`)
and `fit.json` (the probe's realism figures after each round).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from data.realism import FrameSet, compare, frame_stats, load_frame_set, weighted_quantiles
from data.synth.calibration import Calibration, calibration_yaml

REST_QUANTILE = 0.2
DAMPING = 0.8


def weighted_kmeans(x: np.ndarray, w: np.ndarray, k: int, *, seed: int = 0, iters: int = 100):
    """Weighted k-means of x (N, D) with weights w (N,): (centres (k, D), weight share (k,))."""
    rng = np.random.default_rng(seed)
    w = w / w.sum()
    k = min(k, len(x))
    centres = [x[rng.choice(len(x), p=w)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):                                  # k-means++ on the weighted points
        p = w * d2
        centres.append(x[rng.choice(len(x), p=p / p.sum())] if p.sum() > 0 else x[rng.integers(len(x))])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.array(centres)
    for _ in range(iters):
        labels = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1) if len(x) * k < 4e7 else _labels(x, c)
        mass = np.bincount(labels, weights=w, minlength=k)
        new = np.stack([np.bincount(labels, weights=w * x[:, j], minlength=k) for j in range(x.shape[1])], 1)
        new = np.where(mass[:, None] > 0, new / np.maximum(mass[:, None], 1e-300), c)
        if np.allclose(new, c, atol=1e-7):
            break
        c = new
    keep = mass > 0
    return c[keep], mass[keep] / mass[keep].sum()


def _labels(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.concatenate([((x[s:s + 20000, None, :] - c[None]) ** 2).sum(-1).argmin(1)
                           for s in range(0, len(x), 20000)])


def _sample(fs: FrameSet, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = fs.frames, fs.w()
    if len(x) <= n:
        return x, w
    rows = np.random.default_rng(seed).choice(len(x), n, replace=False)
    return x[rows], w[rows] / w[rows].sum()


def fit_calibration(base_cfg, levels: FrameSet, motion: FrameSet | None, *, source: str) -> tuple[Calibration, list[dict]]:
    """The calibration fitted to the references, and the probe's figures after each round.
    `base_cfg`: a SynthConfig whose `fit` section sets the states, rounds and the probe corpus."""
    from data.synth.generate import build_behaviour, simulate_corpus   # generate's module imports synth.py's callers

    cal = base_cfg.fit
    motion = motion if motion is not None else (levels if levels.is_sequence else None)
    if motion is not None and not motion.is_sequence:
        raise ValueError("the motion reference must be a corpus (frame-to-frame change needs sequences)")
    x, w = _sample(levels, 200_000, cal.seed)
    states, shares = weighted_kmeans(x.astype(np.float64), w, cal.n_states, seed=cal.seed)
    order = np.argsort(-shares, kind="stable")            # most frequent state first
    states, shares = states[order], shares[order]
    rest = weighted_quantiles(levels.frames, levels.w(), [REST_QUANTILE])[0]
    target = frame_stats(levels)
    target_motion = np.asarray(frame_stats(motion)["motion"]) if motion is not None else None
    D = levels.frames.shape[1]
    start_jitter = (target_motion if target_motion is not None else np.full(D, 0.15)) * 0.6
    fitted = Calibration(source=source, states=states.round(4).tolist(), shares=shares.round(6).tolist(),
                         rest=rest.round(4).tolist(), offset=[0.0] * D, jitter=start_jitter.round(4).tolist())
    cfg = OmegaConf.merge(base_cfg, {"kind": "pretrain", "vocab": "", "pretrain": OmegaConf.to_container(cal.probe)})
    history = []
    for r in range(cal.rounds + 1):
        sim = simulate_corpus(cfg, calibration=fitted)
        stats = frame_stats(FrameSet(frames=sim.frames.astype(np.float64), au_names=levels.au_names,
                                     offsets=sim.offsets, gap_before=sim.gap_before))
        figures = _figures(stats, target, frame_stats(motion) if motion is not None else None)
        history.append({"round": r, **figures})
        print(f"[calibrate] round {r}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
        if r == cal.rounds:
            break
        mean_gap = np.asarray(target["au_mean"]) - np.asarray(stats["au_mean"])
        fitted.offset = (np.asarray(fitted.offset) + DAMPING * mean_gap).round(4).tolist()
        if target_motion is not None:
            ratio = np.clip(target_motion / np.maximum(stats["motion"], 1e-6), 0.5, 2.0) ** DAMPING
            fitted.jitter = (np.asarray(fitted.jitter) * ratio).round(4).tolist()
        got = np.bincount(sim.states, minlength=len(shares)) + 1.0   # +1: a state the probe missed
        got /= got.sum()
        log_pref = np.asarray(fitted.log_pref) if fitted.log_pref else build_behaviour(cfg, fitted)[0].log_pref
        fitted.log_pref = (log_pref + DAMPING * np.log(shares / got)).round(4).tolist()
    fitted.fit = {k: round(float(v), 4) for k, v in history[-1].items() if k != "round"}
    return fitted, history


def _figures(stats: dict, target: dict, motion_ref: dict | None) -> dict:
    c = compare(stats, target)
    out = {"neutral_fraction": stats["neutral_fraction"], "profile_corr": c["profile_corr"],
           "au_sum_ratio": c["au_sum_ratio"], "corr_matrix_corr": c["corr_matrix_corr"]}
    if motion_ref is not None:
        out["motion_ratio"] = stats["motion_mean"] / motion_ref["motion_mean"]
    return out


def calibrate(cfg) -> Path:
    """The `python synth.py calibrate=...` command: fit, then write out/calibration.yaml and fit.json."""
    from utils.io import save_json, save_text
    from utils.runs import open_run_dir

    cal = cfg.fit
    levels = load_frame_set(cfg.calibrate)
    motion = load_frame_set(cfg.calibrate_motion) if cfg.calibrate_motion else None
    source = (f"fitted by `python synth.py calibrate={cfg.calibrate}"
              + (f" calibrate_motion={cfg.calibrate_motion}" if cfg.calibrate_motion else "")
              + f"` ({cal.n_states} states, {cal.rounds} rounds, seed {cal.seed})")
    out = open_run_dir(cfg.out, cfg, ignore=("out", "workers"))
    fitted, history = fit_calibration(cfg, levels, motion, source=source)
    header = "# The generator's calibration (data/synth/calibrate.py): use it with calibration_file=THIS.\n"
    save_text(calibration_yaml(fitted, header), out / "calibration.yaml")
    save_json({"history": history, "fit": fitted.fit}, out / "fit.json")
    print(f"[calibrate] -> {out / 'calibration.yaml'}")
    return out
