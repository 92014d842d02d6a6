"""training/loop.py through its public interface, one replica: label scaling by hand, predictions
mapped back to the items asked for, early stopping against the rule written out, the best state restored."""
import json

import pytest
import torch

from data.tasks.sequences import SequenceDataset
from models.registry import create_model
from training.loop import TargetScale, evaluate, fit

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    """Models this small gain nothing from threads; on a shared 2-core machine a second thread made
    evaluate ~20x slower (3.6 s against 0.16 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
ONE = torch.tensor([[0]])  # target_index: one replica, one output, learning target 0


def _dataset(lengths, targets, dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(sum(lengths), dim, generator=g) * 5
    offsets = torch.tensor([0] + lengths).cumsum(0)
    return SequenceDataset(values=values, offsets=offsets, ids=[str(i) for i in range(len(lengths))],
                           targets=torch.as_tensor(targets, dtype=torch.float32).reshape(len(lengths), -1),
                           groups=torch.zeros(len(lengths)))


def _model(seed=0):
    # dropout off: training is deterministic on the CPU, so a run can be repeated exactly
    return create_model("bilstm_au", input_dim=3, hidden=8, head=8, input_dropout=0.0, head_dropout=0.0, seeds=[seed])


def _alone(model, ds, i) -> float:
    """The model's scaled output for item i, fed on its own."""
    x = ds.sequence(i)
    with torch.no_grad():
        return float(model.eval()(x[None], torch.tensor([len(x)]))[0, 0, 0])


def test_target_scale_by_hand():
    """The training fold's range maps to [-1, 1]; an empty range (all 10) gets span 1."""
    y = torch.tensor([[2.0, 10.0], [4.0, 10.0], [6.0, 10.0]])
    s = TargetScale.fit(y)
    assert s.lo.tolist() == [2.0, 10.0] and s.span.tolist() == [4.0, 1.0]
    assert s.scale(y).tolist() == [[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]]
    assert s.scale(torch.tensor([[8.0, 11.0]])).tolist() == [[2.0, 1.0]]           # outside the range: beyond 1
    # (n=2, R=3, 1 output): replicas 0 and 2 learn target 0, replica 1 target 1
    out = torch.tensor([[[0.0], [0.0], [1.0]], [[-1.0], [1.0], [0.5]]])
    got = s.unscale(out, torch.tensor([[0], [1], [0]]))
    assert got.tolist() == [[[4.0], [10.5], [6.0]], [[2.0], [11.0], [5.0]]]
    # one replica predicting both targets (joint_targets)
    assert s.unscale(torch.tensor([[[0.0, 0.0]]]), torch.tensor([[0, 1]])).tolist() == [[[4.0, 10.5]]]


def test_evaluate_returns_predictions_in_the_order_asked():
    """Length buckets reorder the batches; evaluate must still give item indices[k] at row k.
    Expected: each item fed alone, unscaled by hand; the loss is the scaled MSE over those items."""
    lengths = [3, 11, 5, 9, 2, 14, 7, 1, 12, 6]
    y = [float(v) for v in range(10, 20)]
    ds = _dataset(lengths, y)
    model = _model(3)
    scale = TargetScale(lo=torch.tensor([10.0]), span=torch.tensor([9.0]))
    indices = [7, 2, 9, 0, 5, 3, 8]
    pred, loss = evaluate(model, ds, indices, scale=scale, target_index=ONE, device=CPU, batch_size=2)
    assert pred.shape == (7, 1, 1)
    alone = [_alone(model, ds, i) for i in indices]
    want = [10.0 + (a + 1) / 2 * 9.0 for a in alone]
    torch.testing.assert_close(pred[:, 0, 0], torch.tensor(want), rtol=1e-5, atol=1e-5)
    mse = sum((a - (2 * (y[i] - 10.0) / 9.0 - 1)) ** 2 for a, i in zip(alone, indices)) / len(indices)
    assert float(loss[0]) == pytest.approx(mse, rel=1e-5)


def _stopping_rule(val_loss, patience, max_epochs):
    """METHOD/loop docstring, written out: keep the first epoch of the lowest validation loss; stop
    once `patience` epochs in a row have not improved on it (strictly), or after max_epochs."""
    best, best_epoch, waited = float("inf"), -1, 0
    for epoch, v in enumerate(val_loss[:max_epochs]):
        if v < best:
            best, best_epoch, waited = v, epoch, 0
        else:
            waited += 1
        if waited >= patience:
            return best_epoch, epoch + 1
    return best_epoch, max_epochs


def _overfitting_task():
    """Validation labels contradict the training ones (same kind of inputs, target reversed), so
    fitting the training items soon makes the validation loss rise: early stopping must act."""
    lengths = [4 + (i * 7) % 9 for i in range(24)]
    ds = _dataset(lengths, [0.0] * 24, seed=1)
    means = torch.stack([ds.sequence(i)[:, 0].mean() for i in range(24)])
    ds.targets[:, 0] = torch.where(torch.arange(24) < 16, means, 5.0 - means)
    return ds, list(range(16)), list(range(16, 24))


@pytest.mark.parametrize("patience", [1, 3])
def test_fit_stops_after_patience_and_restores_the_best_state(tmp_path, patience):
    ds, train_idx, val_idx = _overfitting_task()
    scale = TargetScale.fit(ds.targets[train_idx])
    kw = dict(target_index=ONE, scale=scale, device=CPU, lr=0.01, batch_size=4, seed=0)
    model = _model()
    result = fit(model, ds, train_idx, val_idx, max_epochs=40, patience=patience, log_path=tmp_path / "log.jsonl", **kw)
    curve = [e[0] for e in result.val_loss]
    best_epoch, epochs = _stopping_rule(curve, patience, 40)
    assert len(curve) == epochs < 40                                   # stopped early, where the rule says
    assert int(result.best_epoch[0]) == best_epoch < epochs - 1        # and the best is not the last epoch
    assert curve[-1] > curve[best_epoch]
    assert patience == 1 or best_epoch > 0    # validation first improves: a state from mid-run is restored
    # the model handed back is the best epoch's: its validation MSE, computed here, is that epoch's
    lo, span = float(scale.lo[0]), float(scale.span[0])
    mse = sum((_alone(model, ds, i) - (2 * (float(ds.targets[i, 0]) - lo) / span - 1)) ** 2 for i in val_idx) / len(val_idx)
    assert mse == pytest.approx(curve[best_epoch], rel=1e-5)
    # ... and exactly the state a run stopped right after that epoch ends with (same start, same batches)
    again = _model()
    fit(again, ds, train_idx, val_idx, max_epochs=best_epoch + 1, patience=100, **kw)
    for k, v in again.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert result.best_state.keys() == model.state_dict().keys()
    # one JSON line per epoch, with the losses the result holds
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == list(range(epochs)) and [ln["val_loss"][0] for ln in lines] == curve


def test_fit_runs_max_epochs_while_improving_and_keeps_the_last():
    """Validation = the training items: the loss keeps falling for a few epochs, so no stop before
    max_epochs, and the state handed back is the last epoch's."""
    ds, train_idx, _ = _overfitting_task()
    scale = TargetScale.fit(ds.targets[train_idx])
    model = _model()
    result = fit(model, ds, train_idx, train_idx, target_index=ONE, scale=scale, device=CPU, lr=0.01,
                 batch_size=4, max_epochs=4, patience=2, seed=0)
    curve = [e[0] for e in result.val_loss]
    assert len(curve) == 4 and all(b < a for a, b in zip(curve, curve[1:]))
    assert int(result.best_epoch[0]) == 3
    lo, span = float(scale.lo[0]), float(scale.span[0])
    mse = sum((_alone(model, ds, i) - (2 * (float(ds.targets[i, 0]) - lo) / span - 1)) ** 2 for i in train_idx) / 16
    assert mse == pytest.approx(curve[-1], rel=1e-5)
