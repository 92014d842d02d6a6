"""The replica building blocks against independent references: the grouped LSTM against one
nn.LSTM per group (outputs and gradients), the dropout masks against drawing each replica alone,
ReplicaAdam against torch.optim.Adam, and a frozen replica that must not move."""
import pytest
import torch
from torch import nn

from models.bilstm import BiLSTMRegressor, reverse_padded
from models.grouped_lstm import grouped_lstm, replica_dropout, replica_keep_mask
from training.loop import ReplicaAdam


def test_grouped_lstm_equals_nn_lstm_per_group_forward_and_gradients():
    G, B, T, D, H = 3, 4, 9, 5, 6
    g = torch.Generator().manual_seed(0)
    lstms = [nn.LSTM(D, H, batch_first=True) for _ in range(G)]
    x = torch.randn(G, B, T, D, generator=g)
    w_ih = nn.Parameter(torch.stack([m.weight_ih_l0.detach() for m in lstms]))   # (G, 4H, D)
    w_hh = nn.Parameter(torch.stack([m.weight_hh_l0.detach() for m in lstms]))
    b = nn.Parameter(torch.stack([(m.bias_ih_l0 + m.bias_hh_l0).detach() for m in lstms]))
    proj = torch.einsum("gbtd,ghd->tgbh", x, w_ih) + b[None, :, None, :]          # (T, G, B, 4H)
    ours = grouped_lstm(proj, w_hh)                                               # (T, G, B, H)
    upstream = torch.randn(ours.shape, generator=g)
    (ours * upstream).sum().backward()
    for k, m in enumerate(lstms):
        ref, _ = m(x[k])                                                          # (B, T, H)
        torch.testing.assert_close(ours[:, k].transpose(0, 1), ref, rtol=1e-5, atol=1e-6)
        (ref * upstream[:, k].transpose(0, 1)).sum().backward()
        torch.testing.assert_close(w_ih.grad[k], m.weight_ih_l0.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(w_hh.grad[k], m.weight_hh_l0.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(b.grad[k], m.bias_ih_l0.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("lstm", ["grouped", "fused"])
def test_bidirectional_states_equal_two_nn_lstms_per_replica(lstm):
    """Replica r's [last forward state ; last backward state] equals two nn.LSTM runs on sequences
    cut to their lengths (the backward one on the reversed sequence), gradients included."""
    R, H, D = 3, 5, 4
    model = BiLSTMRegressor(input_dim=D, hidden=H, head=7, replicas=R, seeds=[5, 6, 7], lstm=lstm).eval()
    lengths = torch.tensor([6, 2, 9])
    x = torch.rand(3, 9, D, generator=torch.Generator().manual_seed(1))
    states = model._lstm_states(x[None].expand(R, -1, -1, -1), lengths)            # (T, R*2, B, H)
    last = states[lengths - 1, :, torch.arange(3)]                                  # (B, R*2, H)
    last.square().sum().backward()
    for r in range(R):
        for d in range(2):
            ref = nn.LSTM(D, H, batch_first=True)
            with torch.no_grad():
                for name, p in (("weight_ih_l0", model.w_ih), ("weight_hh_l0", model.w_hh),
                                ("bias_ih_l0", model.b_ih), ("bias_hh_l0", model.b_hh)):
                    getattr(ref, name).copy_(p[r, d])
            total = 0
            for b, n in enumerate(lengths.tolist()):
                seq = x[b, :n] if d == 0 else x[b, :n].flip(0)
                h = ref(seq[None])[0][0, -1]
                torch.testing.assert_close(last[b, 2 * r + d], h, rtol=1e-5, atol=1e-6)
                total = total + h.square().sum()
            total.backward()
            torch.testing.assert_close(model.w_ih.grad[r, d], ref.weight_ih_l0.grad, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(model.w_hh.grad[r, d], ref.weight_hh_l0.grad, rtol=1e-4, atol=1e-6)


def test_memory_is_linear_in_replicas():
    size = lambda R: sum(p.numel() for p in BiLSTMRegressor(vocab_size=50, embed_dim=8, replicas=R).parameters())
    assert size(10) == 10 * size(1) and size(50) == 50 * size(1)


def test_dropout_masks_do_not_depend_on_the_grouping():
    keys = torch.tensor([11, 12, 13, 14], dtype=torch.int64)
    together = replica_keep_mask(keys, (8, 30), p=0.4, counter=5, layer=0)           # (4, 8, 30)
    for r in range(4):
        alone = replica_keep_mask(keys[r:r + 1], (8, 30), p=0.4, counter=5, layer=0)
        assert torch.equal(together[r], alone[0])
    assert abs(together.float().mean().item() - 0.6) < 0.03                         # keeps 1 - p
    assert not torch.equal(together[0], together[1])                                 # replicas differ
    assert not torch.equal(together, replica_keep_mask(keys, (8, 30), p=0.4, counter=6, layer=0))  # each call
    assert not torch.equal(together, replica_keep_mask(keys, (8, 30), p=0.4, counter=5, layer=1))  # each layer
    x = torch.ones(4, 8, 30)
    y = replica_dropout(x, keys, p=0.4, counter=5, layer=0)
    assert torch.equal(y != 0, together) and torch.allclose(y[together], torch.tensor(1 / 0.6))


def test_replica_adam_matches_torch_adam_and_leaves_frozen_replicas_alone():
    g = torch.Generator().manual_seed(0)
    w = nn.Parameter(torch.randn(3, 4, 5, generator=g))
    ref = [nn.Parameter(w[r].detach().clone()) for r in range(3)]
    ours = ReplicaAdam([w], replicas=3, lr=0.01)
    theirs = [torch.optim.Adam([p], lr=0.01) for p in ref]
    targets = torch.randn(3, 4, 5, generator=g)
    frozen_at = {0: 99, 1: 2, 2: 4}                     # replica 1 stops after 2 steps, replica 2 after 4
    for step in range(6):
        active = torch.tensor([step < frozen_at[r] for r in range(3)])
        ours.zero_grad()
        ((w - targets) ** 3).sum().backward()
        before = w.detach().clone()
        ours.step(active)
        for r in range(3):
            if step < frozen_at[r]:
                theirs[r].zero_grad()
                ((ref[r] - targets[r]) ** 3).sum().backward()
                theirs[r].step()
            else:
                assert torch.equal(w[r], before[r])       # frozen: not one bit moves
    for r in range(3):
        torch.testing.assert_close(w[r], ref[r], rtol=1e-6, atol=1e-7)
    assert ours.steps.tolist() == [6, 2, 4]


def test_reverse_padded_matches_flipping_each_sequence():
    x = torch.arange(2 * 3 * 5 * 2).view(2, 3, 5, 2)
    lengths = torch.tensor([5, 1, 3])
    out = reverse_padded(x, lengths, dim=2)
    for b, n in enumerate(lengths.tolist()):
        assert torch.equal(out[:, b, :n], x[:, b, :n].flip(1)) and torch.equal(out[:, b, n:], x[:, b, n:])
