"""python faces.py out=DIR — the face stage: rendered faces -> crops -> noisy pretraining -> fine-tuning -> F1.

Fung & McDuff on the embedded default (configs/faces.yaml; the paper's sizes: configs/paper/faces.yaml):
  1. render   pretraining stills of many people (web-photo-like) and DISFA-like videos of 27 people,
              the videos written in the DISFA and BP4D layouts with their AU truth (faces.datasets)
  2. crops    faces detected (Haar), eye-aligned and cropped to 64x64 grayscale; the fine-tuning set is
              read back through the DISFA reader and decoded from its videos, as real DISFA would be
  3. labels   a simulated OpenFace annotator, calibrated to OpenFace 2.0's DISFA F1, labels the stills
  4. pretrain the VGG13-style CNN (models/au_cnn.py) on the noisy labels, 17 outputs
  5. finetune a 12-AU head, subject-exclusive 3-fold CV, from the pretrained weights and from scratch
              (or, with finetune_set.layout=DIR, on your own DISFA or BP4D folder instead of rendered videos)
  6. scaling  the same with pretraining on N images and on N identities (Tables IV and V)
  7. AUs out  the detector's per-frame AUs of every video as OpenFace CSVs (out/openface/), ready
              for `python ingest.py src=DIR/openface`
Writes out/: config.yaml, data/ (renders, crops, reports), annotator.json, pretrain/<variant>/,
finetune/<variant>/, openface/, tb/ (per-AU F1 and example faces with true and predicted AUs; each
variant's losses under tb/<variant>/),
results.json and results.md (written last). Run it again to resume: finished steps are reused, an
interrupted training continues from its last epoch. Everything runs on CUDA tensors when present.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from faces.annotator import POSITIVE_AT, Annotator, AnnotatorConfig, calibrate, f1_scores, targets_for
from faces.config import RESUMABLE_KEYS, FacesConfig, check
from faces.datasets import build_finetune_set, build_pretrain_set, crops_from_layout
from faces.experiment import FitJob, fold_models, run_fit, subject_folds, _tensor_images
from faces.fit import predict
from faces.metrics import au_metrics
from faces.openface_out import write_au_csv
from faces.report import PAPER_IDENTITIES, PAPER_IMAGES, example_grid, f1_table, scaling_table
from faces.synthetic import Variation, expression_sample
from data.openface.format import AU_INTENSITY
from models.registry import get_model
from utils.cli import run_script
from utils.config import CONFIG_DIR, load_config
from utils.device import pick_device
from utils.artifacts import load_json, load_npz, load_torch
from utils.io import atomic_path, save_json, save_text
from utils.processes import ordered_map
from utils.runs import open_run_dir

DEFAULTS = CONFIG_DIR / "faces.yaml"


def _save_npz(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _bar(cfg, total, desc):
    return tqdm(total=total, desc=desc, disable=not cfg.progress, leave=False)


def main(argv: list[str]) -> None:
    cfg = load_config(FacesConfig, argv, DEFAULTS)
    check(cfg)
    out = open_run_dir(cfg.out, cfg, ignore=RESUMABLE_KEYS)
    device = pick_device(cfg.device)
    # one thread on the CPU: on a shared machine, spin-waiting OpenMP threads made an epoch 5x slower
    # (measured, like train.py's threads_for); every core feeds a GPU
    torch.set_num_threads(cfg.threads or (1 if device.type == "cpu" else os.cpu_count() or 1))
    from torch.utils.tensorboard import SummaryWriter  # slow import
    tb = SummaryWriter(str(out / "tb"))
    t_start, timings = time.perf_counter(), {}
    data = out / "data"
    plain = lambda node: OmegaConf.to_object(node)   # dataclasses: what worker processes can unpickle
    render, crop = plain(cfg.render), plain(cfg.crop)

    # 1-2. render and crop
    t0 = time.perf_counter()
    if not (data / "pretrain.npz").exists():
        with _bar(cfg, cfg.pretrain_set.identities, "render pretraining stills") as bar:
            report = build_pretrain_set(data / "pretrain.npz", seed=cfg.seed, render=render,
                                        sizes=plain(cfg.pretrain_set), crop=crop, workers=cfg.workers, progress=bar)
        save_json(report, data / "pretrain_crops.json")
    own = Path(cfg.finetune_set.layout) if cfg.finetune_set.layout else None    # a user's DISFA or BP4D folder
    if own is None:
        with _bar(cfg, cfg.finetune_set.subjects, "render fine-tuning videos") as bar:
            build_finetune_set(data / "finetune", seed=cfg.seed, render=render, sizes=plain(cfg.finetune_set),
                               workers=cfg.workers, progress=bar)
    if not (data / "finetune.npz").exists():
        source = own or data / "finetune" / "disfa"
        with _bar(cfg, None, f"crop fine-tuning videos ({source})") as bar:
            ft = crops_from_layout(source, crop=crop, workers=cfg.workers, progress=bar)
        save_json(ft.pop("report"), data / "finetune_crops.json")
        _save_npz(data / "finetune.npz", **{k: np.asarray(v) for k, v in ft.items()})
    timings["render_and_crop_s"] = time.perf_counter() - t0
    pre, ft = load_npz(data / "pretrain.npz", "pretraining crops"), load_npz(data / "finetune.npz", "fine-tuning crops")
    with_faces = len(np.unique(ft["subject"]))
    if with_faces < cfg.folds:
        raise ValueError(f"fine-tuning set: faces were found for {with_faces} people, {cfg.folds}-fold cross-validation "
                         f"needs {cfg.folds} (what was dropped and why: {data / 'finetune_crops.json'})")
    au12 = [str(a) for a in ft["au_names"]]
    print(f"[faces] {len(pre['crops'])} pretraining crops of {len(np.unique(pre['subject']))} people, "
          f"{len(ft['crops'])} fine-tuning crops of {len(ft['subjects'])} people "
          f"(reports: {data / 'pretrain_crops.json'}, {data / 'finetune_crops.json'})")
    grid = pre["examples"]
    tb.add_image("data/rendered_stills", np.concatenate(list(grid), axis=1), 0, dataformats="HWC")

    # 3. noisy labels from the simulated annotator, calibrated on the pretraining people's expressions
    ann_cfg = AnnotatorConfig(**OmegaConf.to_container(cfg.annotator))
    annotator = _annotator(out / "annotator.json", cfg, ann_cfg)
    labels, success = annotator.annotate(pre["aus"], pre["subject"], pre["yaw"], np.random.default_rng([cfg.seed, 3]))
    ok = success
    achieved = f1_scores(labels[ok], (pre["aus"][ok] >= POSITIVE_AT).astype(float))
    save_json({"target_f1": dict(zip(AU_INTENSITY, targets_for(ann_cfg).tolist())),
               "f1_on_pretraining_stills": dict(zip(AU_INTENSITY, achieved.round(1).tolist())),
               "sigma": dict(zip(AU_INTENSITY, annotator.sigma.tolist())), "unreachable": annotator.unreachable,
               "failed_frames": int((~ok).sum()), "frames": int(len(ok))}, out / "annotator.json")
    crops_pre, labels_pre, subj_pre = pre["crops"][ok], labels[ok], pre["subject"][ok]

    # 4-6. pretraining variants (full + scaling subsets), each fine-tuned with the same CV; and from scratch.
    # Every pretraining, then every fold of every variant, is one job: on the CPU, `workers` processes
    # of one thread each run them; on a GPU, one after another
    variants = {"full": np.arange(len(crops_pre))}
    rng = np.random.default_rng([cfg.seed, 4])
    for n in (n for n in cfg.scaling.images if n < len(crops_pre)):    # the full set is the last point
        variants[f"images_{n}"] = np.sort(rng.permutation(len(crops_pre))[:n])
    people = rng.permutation(np.unique(subj_pre))
    for n in (n for n in cfg.scaling.identities if n < len(people)):
        variants[f"identities_{n}"] = np.flatnonzero(np.isin(subj_pre, people[:n]))
    ft_rows = np.flatnonzero(ft["row"] % cfg.finetune_set.stride == 0)
    y_ft = ft["occurrence"]
    parallel = cfg.workers if device.type == "cpu" else 1
    names = ["full", "scratch", *list(variants)[1:]]
    common = dict(model=cfg.model, model_cfg=OmegaConf.to_container(cfg[cfg.model]), aug=plain(cfg.augment), out=out,
                  folds=cfg.folds, val_share=cfg.val_share, seed=cfg.seed, device=str(device),
                  threads=torch.get_num_threads(), progress=cfg.progress and parallel == 1)
    pre_jobs = [FitJob(name=n, fold=None, pretrain_idx=variants[n], data=(crops_pre, labels_pre),
                       fit_cfg=plain(cfg.pretrain), **common) for n in names if n in variants]
    ft_data = (ft["crops"][ft_rows], y_ft[ft_rows], ft["subject"][ft_rows])
    ft_jobs = [FitJob(name=n, fold=k, pretrain_idx=variants.get(n), data=ft_data, fit_cfg=plain(cfg.finetune), **common)
               for n in names for k in range(cfg.folds)]
    fold_of = subject_folds(ft_data[2], cfg.folds, cfg.seed)
    results, t0 = {}, time.perf_counter()
    with _bar(cfg, len(pre_jobs) + len(ft_jobs), f"{len(pre_jobs) + len(ft_jobs)} trainings in {parallel} process(es)") as bar:
        for _ in ordered_map(run_fit, pre_jobs, parallel, progress=bar, spawn=True):
            pass
        oof = {n: torch.full(ft_data[1].shape, float("nan")) for n in names}
        for probs, job in zip(ordered_map(run_fit, ft_jobs, parallel, progress=bar, spawn=True), ft_jobs):
            oof[job.name][fold_of == job.fold] = torch.from_numpy(probs)
    for name in names:
        probs = oof[name]
        m = au_metrics(probs, torch.from_numpy(y_ft[ft_rows]), au12)
        results[name] = {"metrics": m, "pretrain_images": int(len(variants.get(name, [])))}
        for au, v in m["f1"].items():
            tb.add_scalar(f"f1/{name}/{au}", v, 0)
        tb.add_scalar(f"f1/{name}/mean8", m["mean8"]["f1"], 0)
        if name in ("full", "scratch"):
            pick = np.random.default_rng(0).choice(len(ft_rows), size=min(cfg.examples, len(ft_rows)), replace=False)
            grid = example_grid(ft["crops"][ft_rows][pick], y_ft[ft_rows][pick], probs[pick].numpy(), au12)
            tb.add_image(f"examples/{name}", grid, 0, dataformats="HWC")
        print(f"[faces] {name}: mean F1 {m['mean8']['f1']:.1f} (8 AUs), {m['mean']['f1']:.1f} (12 AUs); "
              f"PR-AUC {m['mean']['pr_auc']:.1f}, ROC-AUC {m['mean']['roc_auc']:.1f}")
    timings["training_s"] = time.perf_counter() - t0

    # chance on F1 at 0.5: saying "present" on every frame scores 2p / (1 + p) at base rate p
    labels_ft = torch.from_numpy(y_ft[ft_rows])
    rows = {"every frame present (chance)": au_metrics(torch.ones_like(labels_ft), labels_ft, au12)}
    # the simulated OpenFace on the rendered fine-tuning frames: what the pretraining labels are worth there
    if own is None:
        truth17 = _truth_of(ft, data / "finetune")
        ann_lab, _ = annotator.annotate(truth17, ft["subject"], np.zeros(len(truth17)), np.random.default_rng(5))
        cols = [AU_INTENSITY.index(a) for a in au12]
        rows["simulated OpenFace (annotator)"] = au_metrics(torch.from_numpy(ann_lab[:, cols][ft_rows]),
                                                            torch.from_numpy(y_ft[ft_rows]), au12)

    # 7. the detector's AUs as OpenFace CSVs (out-of-fold fine-tuned models + the pretrained 17-AU head)
    t0 = time.perf_counter()
    entry, mcfg = get_model(cfg.model), OmegaConf.to_container(cfg[cfg.model])
    make = lambda n_out: entry.factory(n_outputs=n_out, **mcfg)
    _write_csvs(out / "openface", ft, cfg, make, out, device, au12)
    timings["openface_csv_s"] = time.perf_counter() - t0

    rows.update({"fine-tuning alone": results["scratch"]["metrics"],
                 "noisy pretraining + fine-tuning": results["full"]["metrics"]})
    by_images = sorted((len(variants[n]), len(variants[n]), results[n]["metrics"]) for n in variants if n.startswith("images_"))
    by_images.append((len(variants["full"]), len(variants["full"]), results["full"]["metrics"]))
    n_people = len(np.unique(subj_pre))
    by_ids = sorted((int(n.split("_")[1]), len(variants[n]), results[n]["metrics"]) for n in variants if n.startswith("identities_"))
    by_ids.append((n_people, len(variants["full"]), results["full"]["metrics"]))
    timings["total_s"] = time.perf_counter() - t_start
    md = ["# Face stage results (rendered faces)", "",
          "F1 % per frame at 0.5 on out-of-fold predictions (subject-exclusive "
          f"{cfg.folds}-fold CV over {len(ft['subjects'])} rendered people). Rendered faces: these numbers are "
          "NOT comparable with the papers' DISFA figures, listed only as a reference.", "",
          f1_table(rows), "", "## F1 against the number of pretraining images", "",
          scaling_table(by_images, "images", PAPER_IMAGES), "",
          "## F1 against the number of pretraining identities (all images of N people)", "",
          scaling_table(by_ids, "identities", PAPER_IDENTITIES), "",
          "Times: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), ""]
    save_json({"results": results, "annotator_on_finetune": rows.get("simulated OpenFace (annotator)"), "timings": timings,
               "device": str(device)}, out / "results.json")
    save_text("\n".join(md), out / "results.md")
    tb.close()
    print("\n".join(md))


def _annotator(saved: Path, cfg, ann_cfg: AnnotatorConfig) -> Annotator:
    """Calibrated on whole simulated videos of the pretraining people (no pixels needed); a rerun
    reuses the saved calibration."""
    if saved.exists():
        done = load_json(saved, "annotator calibration")
        return Annotator(cfg=ann_cfg, sigma=np.array([done["sigma"][a] for a in AU_INTENSITY]),
                         unreachable=done["unreachable"])
    variation = Variation(**OmegaConf.to_container(cfg.render.variation))
    sample = expression_sample(seed=cfg.seed, subjects=range(cfg.pretrain_set.identities),
                               frames=int(60 * cfg.render.fps), fps=cfg.render.fps, variation=variation)
    return calibrate(*sample, cfg=ann_cfg, seed=cfg.seed)


def _truth_of(ft: dict, root: Path) -> np.ndarray:
    """(K, 17) the driving intensities of each crop, from the truth CSVs written beside the layouts."""
    from data.openface.reader import read_raw
    out = np.zeros((len(ft["crops"]), len(AU_INTENSITY)))
    for j, vid in enumerate(ft["video_ids"]):
        raw = read_raw(root / "openface_truth" / f"{vid}.csv")
        out[ft["video"] == j] = raw.aus[ft["row"][ft["video"] == j]]          # AU_INTENSITY order (the reader's default AUs)
    return out


def _write_csvs(dest: Path, ft: dict, cfg, make, out: Path, device, au12) -> None:
    models = []
    for state in fold_models(out / "finetune" / "full", cfg.folds):
        m = make(state["head.weight"].shape[0])
        m.load_state_dict(state)
        models.append(m.to(device))
    pre = make(len(AU_INTENSITY))
    pre.load_state_dict(load_torch(out / "pretrain" / "full" / "best.pt", "pretrained model"))
    pre = pre.to(device)
    rows = np.flatnonzero(ft["row"] % cfg.finetune_set.stride == 0)
    fold_of_subject = dict(zip(ft["subject"][rows].tolist(), subject_folds(ft["subject"][rows], cfg.folds, cfg.seed).tolist()))
    counts = load_json(out / "data" / "finetune_crops.json", "crops report")["videos"]
    for j, vid in enumerate(ft["video_ids"]):
        sel = np.flatnonzero(ft["video"] == j)
        n = counts[vid]["frames"]
        probs, ok = np.zeros((n, len(AU_INTENSITY))), np.zeros(n, bool)
        if len(sel):   # a video where no face was found is written with success 0 on every frame
            x = _tensor_images(ft["crops"][sel]).to(device)
            p17 = predict(pre, x).cpu().numpy()
            # the model of the fold that held this person out (one with no training frames was never seen)
            p12 = predict(models[fold_of_subject.get(int(ft["subject"][sel][0]), 0)], x).cpu().numpy()
            for k, au in enumerate(au12):
                if au in AU_INTENSITY:        # BP4D's AU24 has no OpenFace column
                    p17[:, AU_INTENSITY.index(au)] = p12[:, k]
            pos = ft["row"][sel]
            probs[pos], ok[pos] = p17, True
        write_au_csv(dest / f"{vid}.csv", 5.0 * probs, (probs >= 0.5).astype(float), ok, fps=cfg.render.fps)


if __name__ == "__main__":
    run_script(main, "faces.py")
