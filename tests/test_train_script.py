"""train.py end to end on tiny inputs built in a temp dir: one run, a sweep, resumption."""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train
from models.bilstm import BiLSTMRegressor
from utils.cli import run_script
from tests.tiny_tasks import make_task, task_overrides
from training.config import compose
from utils.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.max_epochs=3", "train.patience=2", "progress=false", "cdm_svr.C=[1,10]", "cdm_svr.kernels=[rbf]"]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    a = make_task(root / "a", kind="task_a", subjects=10, videos_per_subject=3)
    b = make_task(root / "b", kind="task_b", subjects=16, videos_per_subject=2)
    return task_overrides("task_a", a) + task_overrides("task_b", b) + ["task_a.folds=3"]


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_one_run_writes_a_complete_run_dir(tasks, tmp_path):
    """A complete run dir; the selected restart checked against the model rebuilt from best.pt alone
    (check_selected_restart: predictions and metrics recomputed outside the code under test)."""
    out = tmp_path / "run"
    argv = tasks + FAST + ["task=task_b", "model=bilstm_glove", "bilstm_glove.d=4", "task_b.restarts=3",
                           "train.parallel_restarts=2", f"out={out}"]
    assert train.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    s = metrics["targets"]["phq8"]
    assert s["restarts"]["n"] == 3 and all(k in s for k in ("ccc", "pcc", "rmse"))
    ck = torch.load(out / "best.pt", weights_only=True)
    assert set(ck["states"]) == {"split0/phq8"} and ck["config"]["bilstm_glove"]["d"] == 4
    BiLSTMRegressor(**ck["kwargs"]).load_state_dict(ck["states"]["split0/phq8"])
    check_selected_restart(out, tasks, restarts=3)
    # TensorBoard: loss curves and hparams in the run's own directory
    tags = set()
    for f in out.glob("events.*"):
        tags |= set(EventAccumulator(str(f)).Reload().Tags()["scalars"])
    assert {"train_loss/phq8/split0", "val_loss/phq8/split0", "hparam/test_ccc", "hparam/test_pcc"} <= tags
    saved = (out / "config.yaml").read_text()
    assert "bilstm_au" not in saved and "task_a" not in saved  # only the sections the run used
    # the saved config is itself a valid config for train.py
    assert compose([f"config={out / 'config.yaml'}"]).bilstm_glove.d == 4


def test_sweep_tables_and_resume(tasks, tmp_path, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"""
name: tiny
out: {tmp_path / 'sweep'}
tasks: [task_a, task_b]
common:
  task_b: {{restarts: 2}}
rows:
  - {{id: random, label: Random, model: random}}
  - {{id: cdm_svr, label: CDM + SVR, model: cdm_svr, tasks: [task_a]}}
  - {{id: static_lr, label: Static + LR, model: static_lr}}
  - {{id: lstm_au, label: LSTM + AU, model: bilstm_au}}
  - {{id: glove_d4, label: LSTM + GloVe d=4, model: bilstm_glove, set: {{bilstm_glove: {{d: 4}}}}}}
""")
    argv = tasks + FAST + [f"sweep={sweep}", "task_a.joint_targets=true"]
    assert train.main(argv) == 0
    root = tmp_path / "sweep"
    md = (root / "results.md").read_text()
    assert "LSTM + GloVe d=4" in md and "(not run)" not in md
    table_a = (root / "task_a" / "results.csv").read_text().splitlines()
    assert len(table_a) == 1 + 5 and "conceptual_disorganisation_pcc" in table_a[0]
    assert len((root / "task_b" / "results.csv").read_text().splitlines()) == 1 + 4  # cdm_svr is task_a only
    finished = {p: p.stat().st_mtime_ns for p in root.rglob("metrics.json")}
    assert len(finished) == 9
    capsys.readouterr()
    # a second call redoes nothing
    assert train.main(argv) == 0
    assert "9 already finished, 0 to run" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in root.rglob("metrics.json")} == finished
    # an interrupted run (splits written, no metrics.json) resumes from its finished splits
    run = root / "task_a" / "lstm_au"
    splits = {p: p.stat().st_mtime_ns for p in (run / "splits").iterdir()}
    (run / "metrics.json").unlink()
    (run / "splits" / "split2.pt").unlink()
    assert train.main(argv) == 0
    assert "8 already finished, 1 to run" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns == t for p, t in splits.items() if p.name != "split2.pt")
    assert (run / "splits" / "split2.pt").exists() and (run / "metrics.json").exists()
    # finished runs are not silently reused under another config
    capsys.readouterr()
    assert _exit_status(argv + ["train.max_epochs=4"]) == 2
    assert "max_epochs" in capsys.readouterr().err


def test_changed_config_is_refused_not_mixed(tasks, tmp_path, capsys):
    out = tmp_path / "run"
    base = tasks + FAST + ["task=task_a", "model=static_lr", f"out={out}"]
    assert train.main(base) == 0
    assert _exit_status(base + ["static_lr.diff=signed"]) == 2
    assert "static_lr.diff" in capsys.readouterr().err


def _exit_status(argv) -> int:
    """Run train.py as the command line does: a user's mistake exits 2 with a one-line message."""
    with pytest.raises(SystemExit) as stop:
        run_script(train.main, "train.py", argv)
    return stop.value.code


def test_bad_keys_name_the_key(tasks, capsys):
    with pytest.raises(ConfigError, match="bilstm_glove.dim"):
        compose(["bilstm_glove.dim=3"])
    assert _exit_status(["task_b.restart=3"]) == 2
    assert "train.py: command line: bad config key 'task_b.restart'" in capsys.readouterr().err


def test_missing_inputs_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"task_a\.labels"):
        train.main(["task_a.labels=''", f"out={tmp_path}"])


@pytest.mark.gpu
def test_cuda_run_batches_the_restarts(tasks, tmp_path):
    """The 4 restarts train as one batched model on CUDA; the selected one, rebuilt on the CPU from
    best.pt, must reproduce the run's predictions, metrics and best-epoch validation loss (TF32 on
    the GPU: looser tolerances)."""
    out = tmp_path / "run"
    argv = tasks + FAST + ["task=task_b", "model=bilstm_tokens", "task_b.restarts=4", "device=cuda", f"out={out}"]
    assert train.main(argv) == 0
    ck = torch.load(out / "best.pt", weights_only=True)
    assert ck["states"]["split0/phq8"]["embedding"].device.type == "cpu"
    assert json.loads((out / "metrics.json").read_text())["targets"]["phq8"]["restarts"]["n"] == 4
    check_selected_restart(out, tasks, restarts=4, atol=5e-3)


def _lin(p, t) -> dict:
    """PCC, RMSE and Lin's CCC (1/n moments) written out."""
    p, t = np.asarray(p, float), np.asarray(t, float)
    pc, tc = p - p.mean(), t - t.mean()
    return {"pcc": (pc * tc).sum() / math.sqrt((pc ** 2).sum() * (tc ** 2).sum()),
            "rmse": math.sqrt(((p - t) ** 2).mean()),
            "ccc": 2 * (pc * tc).mean() / ((pc ** 2).mean() + (tc ** 2).mean() + (p.mean() - t.mean()) ** 2)}


def check_selected_restart(out: Path, overrides: list[str], *, restarts: int, atol: float = 1e-4) -> None:
    """Independent check of a task_b sequence run: rebuild the selected model from best.pt alone,
    feed it each validation and test video as the released code cuts them (last 500 * 6 tokens,
    every 6th) read straight from tokens.pt, unscale with the training split's label range read from
    labels.csv, and score with the formulas above. Its test metrics must be the reported ones, its
    validation CCC the best of the restarts', and its scaled validation MSE the lowest of its curve
    (best state restored)."""
    paths = dict(o.split("=", 1) for o in overrides)
    with open(paths["task_b.labels"], newline="") as f:
        rows = {r["video_id"]: r for r in csv.DictReader(f)}
    tokens = torch.load(Path(paths["task_b.tokens"]) / "tokens.pt", weights_only=True)
    ids, offsets = tokens["video_ids"], tokens["offsets"].tolist()
    y = {part: np.array([float(rows[v]["phq8"]) for v in ids if rows[v]["split"] == part])
         for part in ("train", "validation", "test")}
    lo, span = y["train"].min(), y["train"].max() - y["train"].min()
    ck = torch.load(out / "best.pt", weights_only=True)
    assert float(ck["target_scale"]["split0"]["lo"][0]) == lo and float(ck["target_scale"]["split0"]["span"][0]) == span
    model = BiLSTMRegressor(**ck["kwargs"])
    model.load_state_dict(ck["states"]["split0/phq8"])
    model.eval()

    def predict(part):  # (n,) scaled outputs, one video at a time
        out_ = []
        for i, v in enumerate(ids):
            if rows[v]["split"] == part:
                a, b = offsets[i], offsets[i + 1]
                x = tokens["tokens"][max(a, b - 500 * 6):b:6]
                out_.append(float(model(x[None], torch.tensor([len(x)]))[0, 0, 0]))
        return np.array(out_)

    with torch.no_grad():
        scaled = {part: predict(part) for part in ("validation", "test")}
    pred = {part: lo + (s + 1) / 2 * span for part, s in scaled.items()}
    split = torch.load(out / "splits" / "split0.pt", weights_only=True)["targets"][0]
    q = split["selected"]
    assert len(split["val"]) == len(split["test"]) == restarts and 0 <= q < restarts
    np.testing.assert_allclose(split["test_pred"].numpy(), pred["test"], rtol=0, atol=atol * span)
    reported = json.loads((out / "metrics.json").read_text())["targets"]["phq8"]
    for part, got in (("test", reported), ("validation", split["val"][q])):
        want = _lin(pred[part], y[part])
        for m in ("pcc", "rmse", "ccc"):
            assert got[m] == pytest.approx(want[m], abs=10 * atol), (part, m)
    assert split["val"][q]["ccc"] == max(v["ccc"] for v in split["val"])      # the best on validation
    val_mse = float(np.mean((scaled["validation"] - (2 * (y["validation"] - lo) / span - 1)) ** 2))
    assert val_mse == pytest.approx(min(split["val_loss"]), abs=atol)
    assert split["val_loss"][split["best_epoch"]] == min(split["val_loss"])


def test_changed_inputs_are_refused_not_reused(tmp_path, capsys):
    """A finished run is stamped with its inputs' hashes: a corrected labels.csv (or new tokens)
    must not silently reuse the old metrics."""
    task = make_task(tmp_path / "t", kind="task_b", subjects=16, videos_per_subject=2)
    out = tmp_path / "run"
    argv = task_overrides("task_b", task) + FAST + ["task=task_b", "model=static_lr", f"out={out}"]
    assert train.main(argv) == 0
    assert train.main(argv) == 0                       # unchanged inputs: the finished run is reused
    labels = Path(task["labels"])
    labels.write_text(labels.read_text().replace(",train,", ",validation,", 1))
    capsys.readouterr()
    assert _exit_status(argv) == 2
    err = capsys.readouterr().err
    assert "other inputs" in err and "labels" in err


def test_resuming_on_another_device_type_is_refused(tasks, tmp_path, capsys):
    out = tmp_path / "run"
    argv = tasks + FAST + ["task=task_b", "model=bilstm_au", "task_b.restarts=2", f"out={out}"]
    assert train.main(argv) == 0
    (out / "metrics.json").unlink()                     # as if interrupted after its split was saved
    split = torch.load(out / "splits" / "split0.pt", weights_only=True)
    assert split["device"] == "cpu"
    torch.save(split | {"device": "cuda"}, out / "splits" / "split0.pt")
    capsys.readouterr()
    assert _exit_status(argv) == 2
    assert "was trained on cuda" in capsys.readouterr().err
