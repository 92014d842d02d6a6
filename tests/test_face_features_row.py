"""The "LSTM + face features" row: train.py reads a face-feature corpus through the one sequence
dataloader (bilstm_face), whole (the corpus holds exactly the time steps to read), and stamps it."""
import json
from pathlib import Path

import pytest

import train
from data.openface.corpus import FrameCorpus
from tests.tiny_tasks import make_task, task_overrides
from training.config import compose
from training.experiment import input_files, load_dataset
from data.tasks.labels import read_labels
from models.registry import get_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def task_b(tmp_path_factory):
    root = tmp_path_factory.mktemp("tinyb")
    paths = make_task(root, kind="task_b", subjects=16, videos_per_subject=1)
    # any frame corpus is a valid face-feature corpus: the tiny AU corpus stands in for embeddings
    return task_overrides("task_b", paths) + [f"task_b.face_features={paths['corpus']}"], paths


def test_bilstm_face_reads_the_face_feature_corpus_whole(task_b, monkeypatch):
    monkeypatch.chdir(ROOT)
    overrides, paths = task_b
    cfg = compose(overrides + ["task=task_b", "model=bilstm_face", "task_b.max_len=3", "task_b.stride=2"])
    labels = read_labels(cfg.task_b.labels)
    dataset, context = load_dataset(cfg, get_model("bilstm_face"), labels, ["phq8"])
    corpus = FrameCorpus.load(paths["corpus"])
    assert context == {"input_dim": 17}
    assert dataset.lengths.tolist() == (corpus.offsets[1:] - corpus.offsets[:-1]).tolist()   # no crop, no stride
    assert "face_features" in input_files(cfg) and "tokens" not in input_files(cfg)


def test_train_py_runs_the_row(task_b, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    overrides, _ = task_b
    out = tmp_path / "run"
    assert train.main(overrides + ["task=task_b", "model=bilstm_face", "task_b.restarts=2", "train.max_epochs=2",
                                   "progress=false", f"out={out}"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "bilstm_face" and "ccc" in metrics["targets"]["phq8"]
    assert "face_features" in json.loads((out / "inputs.json").read_text())


def test_missing_face_features_names_the_key(task_b, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    overrides, _ = task_b
    with pytest.raises(SystemExit):
        from utils.cli import run_script
        run_script(train.main, "train.py", overrides + ["task=task_b", "model=bilstm_face", "task_b.face_features=",
                                                        f"out={tmp_path / 'x'}"])
    assert "task_b.face_features" in capsys.readouterr().err
