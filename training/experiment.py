"""One run: one model on one task, over every split of the task's protocol and every target.

    run_dir/config.yaml        the run's resolved config (training.config.run_config)
    run_dir/splits/split{k}.pt each finished split: metrics of every restart, the selected model's
                               test predictions and state (an interrupted run resumes from these)
    run_dir/train_log.jsonl    one JSON line per epoch of every sequence-model fit
    run_dir/best.pt            the selected model of every (split, target), the config, the target scales
    run_dir/events.*           TensorBoard: train/val loss of each selected model, hparams
    run_dir/metrics.json       written last: the run is finished when it exists

Sequence models train `targets x restarts` replicas per split (or `restarts` joint replicas with
`joint_targets`), `parallel_restarts` of them batched into one model at a time (models/bilstm.py);
for each target the restart with the best validation score is kept and reported on the test set.
Baselines fit one model per target and split; `random` averages its metrics over its draws.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from data.openface.corpus import FrameCorpus, corpus_fingerprint
from data.tasks.labels import LabelTable, read_labels
from data.tasks.sequences import SequenceDataset
from glove.files import read_embeddings
from models.registry import ModelEntry, get_model
from training.config import RESUMABLE_KEYS, run_config
from training.loop import TargetScale, evaluate, fit
from losses.metrics import METRICS, regression_metrics_many
from training.protocols import Split, fixed_split, kfold, select_restart, to_items
from training.artifacts import read_inputs, read_metrics, read_split
from utils.io import file_digest, save_json, save_torch
from vocab.tokens import Tokens
from utils import names
from utils.seeds import seed_for
from utils.names import in_dir
from utils.runs import RunDirError, open_run_dir


def _need(task_cfg: DictConfig, task: str, key: str, what: str) -> str:
    value = task_cfg[key]
    if not value:
        raise ValueError(f"{task}.{key} is not set: give the {what} ({task}.{key}=PATH)")
    return value


def load_dataset(cfg: DictConfig, model: ModelEntry, labels: LabelTable, targets: list[str]) -> tuple[SequenceDataset, dict]:
    """The task's sequences (frames or tokens) and what the model factory needs to know about them."""
    task = cfg[cfg.task]
    params = cfg[cfg.model]
    full = bool(params.get("full_sequence", False))
    options = dict(max_len=None if full else task.max_len, stride=1 if full else task.stride, crop=task.crop)
    if model.inputs == "frames":
        corpus = FrameCorpus.load(_need(task, cfg.task, "corpus", "frame corpus dir (python ingest.py)"))
        return SequenceDataset.from_corpus(corpus, labels, targets, **options), {"input_dim": corpus.frames.shape[1]}
    path = in_dir(_need(task, cfg.task, "tokens", "tokens dir (python cluster.py)"), names.TOKENS)
    if not path.exists():
        raise FileNotFoundError(f"{cfg.task}.tokens: {path} does not exist; build it with `python cluster.py`")
    # the tokens must be those of the task's corpus (when it is given): another task's tokens could
    # share a few video ids by chance and train silently on them
    expected = corpus_fingerprint(task.corpus) if task.corpus else None
    tokens = Tokens.load(path, corpus_fingerprint=expected)
    context = {"vocab_size": tokens.vocab_size}
    if model.inputs == "embeddings":
        folder = _need(task, cfg.task, "embeddings", "dir of embeddings_d{d}.pt (python embed.py)")
        context["vectors"] = read_embeddings(folder, d=params.d, tokens_fingerprint=tokens.fingerprint,
                                             vocab_size=context["vocab_size"])
    return SequenceDataset.from_tokens(vars(tokens), labels, targets, **options), context


def input_files(cfg: DictConfig) -> dict[str, Path]:
    """The files a run's results depend on, beside its config (which holds only their paths)."""
    task, model = cfg[cfg.task], get_model(cfg.model)
    files = {"labels": Path(_need(task, cfg.task, "labels", "labels.csv"))}
    if model.inputs == "frames" or task.corpus:   # token models: the corpus their tokens must be of
        corpus = Path(task.corpus)
        files["corpus"] = corpus / names.CORPUS_META                 # holds the corpus fingerprint
        files |= {f"corpus {name}": corpus / f"{name}.npy" for name in names.CORPUS_ARRAYS}
        files["corpus videos"] = corpus / names.VIDEOS
    if model.inputs != "frames":
        files["tokens"] = in_dir(task.tokens, names.TOKENS)
    if model.inputs == "embeddings":
        files["embeddings"] = in_dir(task.embeddings, names.embeddings_file(cfg[cfg.model].d))
    return files


def check_inputs(cfg: DictConfig, out: Path) -> None:
    """Stamp the run with its inputs' hashes (inputs.json); refuse to reuse it once an input changed,
    so re-running cluster.py or embed.py, or correcting labels.csv, never mixes old and new results."""
    files = input_files(cfg)
    missing: dict[str, list[str]] = {}
    for name, path in files.items():         # grouped by the config key that points at them
        if not path.is_file():
            missing.setdefault(name.split()[0], []).append(path.name)
    if missing:
        raise FileNotFoundError("; ".join(f"{cfg.task}.{key}={cfg[cfg.task][key]}: no {', '.join(found)} there"
                                          for key, found in missing.items()) + " (build it with its stage first)")
    stamp = {name: file_digest(path) for name, path in files.items()}
    saved = out / names.INPUTS
    if not saved.exists():
        save_json(stamp, saved)
        return
    old = read_inputs(saved)
    changed = sorted(n for n in old.keys() | stamp.keys() if old.get(n) != stamp.get(n))
    if changed:
        paths = ", ".join(f"{n} ({input_files(cfg).get(n, '?')})" for n in changed)
        raise RunDirError(f"{out} was computed from other inputs: {paths} changed since. "
                          f"Delete {out} or use another out=.")


def make_splits(cfg: DictConfig, labels: LabelTable, dataset: SequenceDataset) -> list[Split]:
    """Splits over the labelled videos present in the dataset, mapped to the dataset's items."""
    task = cfg[cfg.task]
    present = set(dataset.ids)
    rows = [i for i, v in enumerate(labels.video_ids) if v in present]  # videos in labels.csv order
    unit = {labels.video_ids[i]: u for u, i in enumerate(rows)}
    item_unit = np.array([unit[v] for v in dataset.ids])
    if task.protocol == "split":
        splits = fixed_split([labels.splits[i] for i in rows], where=labels.path)
    else:
        groups = np.array([labels.subjects[i] for i in rows]) if task.grouped else None
        splits = kfold(len(rows), folds=task.folds, seed=task.fold_seed, val_fraction=task.val_fraction, groups=groups)
    return [to_items(s, item_unit) for s in splits]


def _restart_summary(val: list[dict], test: list[dict], averaged: bool, select: str) -> tuple[int | None, dict, dict]:
    if averaged:  # random: the mean over independent draws, nothing selected
        mean = lambda ms: {m: float(np.mean([x[m] for x in ms])) for m in METRICS} | {"constant": any(x["constant"] for x in ms)}
        return None, mean(val), mean(test)
    q = select_restart(val, select)
    return q, val[q], test[q]


def fit_sequence_split(cfg, factory, dataset, split: Split, k: int, context: dict, device, out: Path) -> dict:
    task, loop, params = cfg[cfg.task], cfg.train, OmegaConf.to_container(cfg[cfg.model])
    n_targets, Q = dataset.targets.shape[1], task.restarts
    if task.joint_targets:   # replica = restart, each predicts every target
        replicas = [(-1, q) for q in range(Q)]
        target_index = torch.arange(n_targets).repeat(Q, 1)                        # (Q, n_targets)
    else:                    # replica = (target, restart), one output each
        replicas = [(t, q) for t in range(n_targets) for q in range(Q)]
        target_index = torch.tensor([[t] for t, _ in replicas])                    # (T*Q, 1)
    scale = TargetScale.fit(dataset.targets[split.train])
    # auto (0): on a GPU one batched model for all replicas; on the CPU one at a time, where the
    # block-diagonal LSTM's wasted multiplications cost more than the batching saves
    chunk = loop.parallel_restarts or (len(replicas) if device.type == "cuda" else 1)
    val_pred, test_pred, curves, states, best_epoch = [], [], [], {}, []
    for c0 in range(0, len(replicas), chunk):
        reps, ti = replicas[c0:c0 + chunk], target_index[c0:c0 + chunk]
        seeds = [seed_for(cfg.seed, k, t + 1, q) for t, q in reps]  # t = -1: joint replica
        model = factory(**params, **context, n_outputs=ti.shape[1], replicas=len(reps), seeds=seeds)
        torch.manual_seed(seed_for(cfg.seed, k, c0 + 1))  # dropout; the batch order is the same for every replica
        result = fit(model, dataset, split.train, split.val, target_index=ti, scale=scale, device=device,
                     lr=loop.lr, batch_size=loop.batch_size, max_epochs=loop.max_epochs, patience=loop.patience,
                     bucket=loop.bucket, seed=seed_for(cfg.seed, k), log_path=out / "train_log.jsonl")
        kw = dict(target_index=ti, scale=scale, device=device, batch_size=loop.batch_size)
        val_pred.append(evaluate(model, dataset, split.val, **kw)[0])
        test_pred.append(evaluate(model, dataset, split.test, **kw)[0])
        best_epoch += result.best_epoch.tolist()
        for r in range(len(reps)):
            curves.append({"train_loss": [e[r] for e in result.train_loss], "val_loss": [e[r] for e in result.val_loss]})
            states[c0 + r] = model.replica_state(r)  # CPU copies; dropped below except the selected ones
        kwargs = dict(model.kw)  # rebuilds one replica: BiLSTMRegressor(**kwargs)
    val_pred, test_pred = torch.cat(val_pred, 1), torch.cat(test_pred, 1)         # (n, G, n_outputs)
    y_val, y_test = dataset.targets[split.val], dataset.targets[split.test]
    per_target, selected_states = {}, {}
    for t in range(n_targets):
        # (replica, output) pairs that predict target t, in restart order
        pairs = [(g, (t if task.joint_targets else 0)) for g, (tt, _) in enumerate(replicas) if tt in (t, -1)]
        val = regression_metrics_many(torch.stack([val_pred[:, g, o] for g, o in pairs]), y_val[:, t])
        test = regression_metrics_many(torch.stack([test_pred[:, g, o] for g, o in pairs]), y_test[:, t])
        q, val_sel, test_sel = _restart_summary(val, test, False, task.select)
        g, o = pairs[q]
        per_target[t] = {"selected": q, "val": val, "test": test, "val_selected": val_sel, "test_selected": test_sel,
                         "test_pred": test_pred[:, g, o].clone(), "best_epoch": best_epoch[g], **curves[g]}
        selected_states[t] = states[g]
    return {"targets": per_target, "states": selected_states, "kwargs": kwargs,
            "scale": {"lo": scale.lo, "span": scale.span}}


def fit_baseline_split(cfg, features: np.ndarray, dataset, split: Split, k: int) -> dict:
    task, params = cfg[cfg.task], OmegaConf.to_container(cfg[cfg.model])
    per_target, states = {}, {}
    for t in range(dataset.targets.shape[1]):
        y = dataset.targets[:, t].double().numpy()
        model = get_model(cfg.model).factory(**params, select=task.select, seed=seed_for(cfg.seed, k, t))
        model.fit(features[split.train], y[split.train], features[split.val], y[split.val])
        pv, pt = model.predict(features[split.val]), model.predict(features[split.test])  # (draws, n)
        val, test = regression_metrics_many(pv, y[split.val]), regression_metrics_many(pt, y[split.test])
        q, val_sel, test_sel = _restart_summary(val, test, model.averaged, task.select)
        per_target[t] = {"selected": q, "val": val, "test": test, "val_selected": val_sel, "test_selected": test_sel,
                         "test_pred": torch.from_numpy(pt.mean(0) if q is None else pt[q])}
        states[t] = model.state()
    return {"targets": per_target, "states": states}


def _std(x: list[float]) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def summarise(results: list[dict], targets: list[str]) -> dict:
    """Per target: mean and std over splits of the selected model's test metrics, and the spread of
    the test metrics over all restarts (or draws) of all splits."""
    summary = {}
    for t, name in enumerate(targets):
        sel = [r["targets"][t]["test_selected"] for r in results]
        every = [m for r in results for m in r["targets"][t]["test"]]
        row = {}
        for m in METRICS:
            row[m] = float(np.mean([s[m] for s in sel]))
            row[f"{m}_std"] = _std([s[m] for s in sel])
        row["n_splits"] = len(sel)
        row["constant_splits"] = sum(bool(s["constant"]) for s in sel)
        row["restarts"] = {"n": len(every) // max(len(results), 1),
                           **{f"{m}_{f}": fn([x[m] for x in every]) for m in METRICS
                              for f, fn in (("mean", lambda v: float(np.mean(v))), ("std", _std))}}
        row["splits"] = [{"split": k, "selected": r["targets"][t]["selected"], "val": r["targets"][t]["val_selected"],
                          "test": r["targets"][t]["test_selected"]} for k, r in enumerate(results)]
        summary[name] = row
    return summary


def run(cfg: DictConfig, device: torch.device, *, log=print) -> dict:
    """Train and evaluate `cfg.model` on `cfg.task`; returns metrics.json's content (cached if finished)."""
    out = open_run_dir(cfg.out, run_config(cfg), ignore=RESUMABLE_KEYS)
    check_inputs(cfg, out)
    if (out / names.METRICS).exists():
        return read_metrics(out / names.METRICS)
    start = time.time()
    task = cfg[cfg.task]
    model = get_model(cfg.model)
    labels = read_labels(_need(task, cfg.task, "labels", "labels.csv"))
    targets = list(task.targets) or labels.target_names
    dataset, context = load_dataset(cfg, model, labels, targets)
    splits = make_splits(cfg, labels, dataset)
    sequence_model = model.kind == "sequence"
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the head and the batched input projections
    features = None
    if not sequence_model:
        features = model.factory(**OmegaConf.to_container(cfg[cfg.model])).featurize(dataset)
    from torch.utils.tensorboard import SummaryWriter  # slow import, only for runs that train
    writer = SummaryWriter(str(out))
    results = []
    for k, split in enumerate(splits):
        path = out / "splits" / f"split{k}.pt"
        done = read_split(path, k)
        if done is not None:
            if sequence_model and done.get("device", device.type) != device.type:
                # restarts batch differently on CUDA and CPU (so do their dropout draws): never mix them in one run
                raise RunDirError(f"{path} was trained on {done['device']}; resume with device={done['device']} "
                                  f"or delete {out}")
            results.append(done)
            continue
        t0 = time.time()
        if sequence_model:
            result = fit_sequence_split(cfg, model.factory, dataset, split, k, context, device, out)
            for t, name in enumerate(targets):
                for key in ("train_loss", "val_loss"):
                    for epoch, v in enumerate(result["targets"][t][key]):
                        writer.add_scalar(f"{key}/{name}/split{k}", v, epoch)
        else:
            result = fit_baseline_split(cfg, features, dataset, split, k)
        result |= {"split": k, "test_items": torch.from_numpy(split.test), "seconds": time.time() - t0,
                   "device": device.type}
        save_torch(result, path)
        results.append(result)
        mean_test = {m: np.mean([result["targets"][t]["test_selected"][m] for t in range(len(targets))]) for m in METRICS}
        if cfg.progress:
            log(f"  {cfg.task}/{cfg.model} split {k + 1}/{len(splits)}: {time.time() - t0:.1f}s  test " +
                " ".join(f"{m}={v:.3f}" for m, v in mean_test.items()))
    summary = summarise(results, targets)
    checkpoint = {"config": OmegaConf.to_container(run_config(cfg), resolve=True), "model": cfg.model,
                  "targets": targets, "kwargs": results[0].get("kwargs", {}),
                  "states": {f"split{r['split']}/{name}": r["states"][t] for r in results for t, name in enumerate(targets)},
                  "target_scale": {f"split{r['split']}": r["scale"] for r in results if "scale" in r}}
    save_torch(checkpoint, out / names.BEST)
    mean = {m: float(np.mean([summary[n][m] for n in targets])) for m in METRICS}
    hparams = {"task": cfg.task, "model": cfg.model, "restarts": task.restarts, "max_len": task.max_len or 0,
               "stride": task.stride, "lr": cfg.train.lr, "batch_size": cfg.train.batch_size}
    hparams |= {k: v for k, v in OmegaConf.to_container(cfg[cfg.model]).items() if isinstance(v, (int, float, str, bool))}
    writer.add_hparams(hparams, {f"hparam/test_{m}": v for m, v in mean.items()}, run_name=".")
    writer.close()
    metrics = {"task": cfg.task, "model": cfg.model, "protocol": task.protocol, "targets": summary,
               "mean_over_targets": mean, "n_items": len(dataset), "seconds": round(time.time() - start, 1)}
    save_json(metrics, out / names.METRICS)
    return metrics
