"""Batched restarts train each replica exactly as it trains alone: per-replica early stopping,
best epochs, best states, losses and (through train.py) the restart selected, with dropout off and
with seeded dropout on, for frame, token and GloVe models. Reference: each replica fitted alone
(R = 1) with the other LSTM implementation."""
from pathlib import Path

import pytest
import torch

import train
from data.tasks.sequences import SequenceDataset
from models.registry import create_model
from tests.tiny_tasks import make_task, task_overrides
from training.loop import TargetScale, fit

CPU = torch.device("cpu")
SEEDS = [21, 22, 23]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    """As train.py on the CPU (training.config.threads_for): intra-op threads only wait on these sizes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _token_task():
    """Tokens whose count of token 5 sets the label; validation labels partly contradict the
    training ones, so replicas overfit at different epochs and stop at different times."""
    g = torch.Generator().manual_seed(3)
    lengths = [5 + (i * 5) % 11 for i in range(30)]
    values = torch.randint(0, 12, (sum(lengths),), generator=g)
    offsets = torch.tensor([0] + lengths).cumsum(0)
    ds = SequenceDataset(values=values, offsets=offsets, ids=[str(i) for i in range(30)],
                         targets=torch.zeros(30, 1), groups=torch.zeros(30))
    share = torch.stack([(ds.sequence(i) == 5).float().mean() for i in range(30)])
    ds.targets[:, 0] = torch.where(torch.arange(30) < 20, share, share.flip(0))
    return ds, list(range(20)), list(range(20, 30))


def _model(replicas, seeds, dropout, lstm):
    p = 0.3 if dropout else 0.0
    return create_model("bilstm_tokens", vocab_size=12, embed_dim=4, hidden=6, head=6, input_dropout=p,
                        head_dropout=p, replicas=replicas, seeds=seeds, lstm=lstm)


@pytest.mark.parametrize("dropout", [False, True])
def test_batched_fit_equals_each_replica_alone(dropout):
    ds, train_idx, val_idx = _token_task()
    scale = TargetScale.fit(ds.targets[train_idx])
    kw = dict(scale=scale, device=CPU, lr=0.02, batch_size=4, max_epochs=15, patience=3, seed=7)
    R = len(SEEDS)
    batched = _model(R, SEEDS, dropout, "grouped")
    res = fit(batched, ds, train_idx, val_idx, target_index=torch.zeros(R, 1, dtype=torch.long), **kw)
    epochs = res.epochs.tolist()
    assert len(set(epochs)) > 1 and min(epochs) < 15      # replicas stopped at different epochs: a real test
    for r, seed in enumerate(SEEDS):
        alone = _model(1, [seed], dropout, "fused")
        one = fit(alone, ds, train_idx, val_idx, target_index=torch.zeros(1, 1, dtype=torch.long), **kw)
        assert int(res.best_epoch[r]) == int(one.best_epoch[0]) and epochs[r] == int(one.epochs[0])
        got, want = res.curve(r), one.curve(0)
        assert len(got["val_loss"]) == len(want["val_loss"])
        torch.testing.assert_close(torch.tensor(got["val_loss"]), torch.tensor(want["val_loss"]), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(torch.tensor(got["train_loss"]), torch.tensor(want["train_loss"]), rtol=1e-4, atol=1e-6)
        # the state handed back is the replica's own best epoch's, as alone
        for k, v in batched.replica_state(r).items():
            torch.testing.assert_close(v, alone.state_dict()[k], rtol=1e-4, atol=1e-5, msg=k)


def test_frozen_replica_keeps_its_best_state_while_others_train():
    """patience=1 with a validation set that soon gets worse: each replica's restored state is the
    one of its own best epoch, which a run of it alone for best_epoch + 1 epochs ends with."""
    ds, train_idx, val_idx = _token_task()
    scale = TargetScale.fit(ds.targets[train_idx])
    kw = dict(scale=scale, device=CPU, lr=0.02, batch_size=4, seed=7)
    batched = _model(2, SEEDS[:2], False, "grouped")
    res = fit(batched, ds, train_idx, val_idx, target_index=torch.zeros(2, 1, dtype=torch.long),
              max_epochs=25, patience=1, **kw)
    for r in range(2):
        alone = _model(1, [SEEDS[r]], False, "grouped")
        fit(alone, ds, train_idx, val_idx, target_index=torch.zeros(1, 1, dtype=torch.long),
            max_epochs=int(res.best_epoch[r]) + 1, patience=100, **kw)
        for k, v in batched.replica_state(r).items():
            torch.testing.assert_close(v, alone.state_dict()[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def task_b(tmp_path_factory):
    return task_overrides("task_b", make_task(tmp_path_factory.mktemp("b"), kind="task_b", subjects=16,
                                              videos_per_subject=2))


@pytest.mark.parametrize("model", ["bilstm_tokens", "bilstm_glove", "bilstm_au"])
def test_train_py_selects_the_same_restart_whatever_the_grouping(task_b, tmp_path, monkeypatch, model):
    """train.py with dropout on (the defaults): 3 restarts one at a time and all 3 in one model give
    the same per-restart metrics, best epochs and selected restart."""
    monkeypatch.chdir(ROOT)
    base = task_b + ["task=task_b", f"model={model}", "task_b.restarts=3", "train.max_epochs=6", "train.patience=2",
                     "progress=false", "bilstm_glove.d=4", "bilstm_tokens.embed_dim=4"]
    splits = {}
    for chunk, lstm in ((1, "fused"), (3, "grouped")):
        out = tmp_path / f"p{chunk}"
        assert train.main(base + [f"train.parallel_restarts={chunk}", f"{model}.lstm={lstm}", f"out={out}"]) == 0
        splits[chunk] = torch.load(out / "splits" / "split0.pt", weights_only=True)["targets"][0]
    a, b = splits[1], splits[3]
    assert a["selected"] == b["selected"] and a["best_epoch"] == b["best_epoch"]
    for part in ("val", "test"):
        for qa, qb in zip(a[part], b[part]):
            for m in ("ccc", "pcc", "rmse"):
                assert qa[m] == pytest.approx(qb[m], rel=1e-4, abs=1e-5), (part, m)
    torch.testing.assert_close(a["val_loss"], b["val_loss"], rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_cuda_batched_run_selects_what_the_cpu_selects_one_at_a_time(task_b, tmp_path, monkeypatch):
    """The same config on CUDA (all restarts in one grouped model) and on the CPU (one at a time):
    the same dropout masks (hashed), so the same restart up to float and cuDNN rounding."""
    monkeypatch.chdir(ROOT)
    base = task_b + ["task=task_b", "model=bilstm_tokens", "task_b.restarts=3", "train.max_epochs=6",
                     "train.patience=2", "progress=false", "bilstm_tokens.embed_dim=4"]
    splits = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        assert train.main(base + [f"device={device}", f"out={out}"]) == 0
        splits[device] = torch.load(out / "splits" / "split0.pt", weights_only=True)["targets"][0]
    a, b = splits["cpu"], splits["cuda"]
    assert a["selected"] == b["selected"] and a["best_epoch"] == b["best_epoch"]
    for qa, qb in zip(a["val"], b["val"]):
        assert qa["ccc"] == pytest.approx(qb["ccc"], rel=1e-3, abs=1e-4)
