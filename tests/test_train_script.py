"""train.py end to end on tiny inputs built in a temp dir: one run, a sweep, resumption."""
import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train
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
    out = tmp_path / "run"
    argv = tasks + FAST + ["task=task_b", "model=bilstm_glove", "bilstm_glove.d=4", "task_b.restarts=3",
                           "train.parallel_restarts=2", f"out={out}"]
    assert train.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    s = metrics["targets"]["phq8"]
    assert s["restarts"]["n"] == 3 and all(k in s for k in ("ccc", "pcc", "rmse"))
    ck = torch.load(out / "best.pt", weights_only=True)
    assert set(ck["states"]) == {"split0/phq8"} and ck["config"]["bilstm_glove"]["d"] == 4
    from models.bilstm import BiLSTMRegressor
    BiLSTMRegressor(**ck["kwargs"]).load_state_dict(ck["states"]["split0/phq8"])
    # the selected restart is the best on validation (test never consulted)
    split = torch.load(out / "splits" / "split0.pt", weights_only=True)["targets"][0]
    assert split["selected"] == max(range(3), key=lambda q: split["val"][q]["ccc"])
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
    out = tmp_path / "run"
    argv = tasks + FAST + ["task=task_b", "model=bilstm_tokens", "task_b.restarts=4", "device=cuda", f"out={out}"]
    assert train.main(argv) == 0
    ck = torch.load(out / "best.pt", weights_only=True)
    assert ck["states"]["split0/phq8"]["embedding"].device.type == "cpu"
    assert json.loads((out / "metrics.json").read_text())["targets"]["phq8"]["restarts"]["n"] == 4


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
