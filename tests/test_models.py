"""BiLSTM regressors: padding never leaks into the result, replicas are independent plain models,
the registry rejects unknown names, bilstm_glove refuses embeddings of another vocabulary."""
import pytest
import torch

from data.tasks.sequences import pad_collate
from glove.files import read_embeddings
from models.bilstm import BiLSTMRegressor, reverse_padded
from models.registry import create_model, known_models
from utils.io import save_torch


def _batch(seqs):
    return pad_collate([{"x": s, "y": torch.zeros(1), "group": torch.tensor(0), "index": i} for i, s in enumerate(seqs)])


def _frames(lengths, dim=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, dim, generator=g) * 5 for n in lengths]


def _tokens(lengths, vocab=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g) for n in lengths]


@pytest.mark.parametrize("pack", [False, True])
@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("kind", ["au", "tokens"])
def test_padded_batch_equals_each_sequence_alone(kind, replicas, pack):
    lengths = [7, 1, 12, 3]
    if kind == "au":
        model, seqs = create_model("bilstm_au", input_dim=17, replicas=replicas, pack=pack), _frames(lengths)
    else:
        model, seqs = create_model("bilstm_tokens", vocab_size=20, embed_dim=6, replicas=replicas, pack=pack), _tokens(lengths)
    model.eval()
    batch = _batch(seqs)
    out = model(batch["x"], batch["lengths"])                       # (B, R, 1)
    assert out.shape == (4, replicas, 1)
    for i, s in enumerate(seqs):
        alone = model(s[None], torch.tensor([len(s)]))
        torch.testing.assert_close(out[i], alone[0], rtol=1e-5, atol=1e-6)


def test_reversal_and_packing_give_the_same_states():
    torch.manual_seed(0)
    a = create_model("bilstm_au", input_dim=17, replicas=2, seeds=[3, 4]).eval()
    b = create_model("bilstm_au", input_dim=17, replicas=2, seeds=[3, 4], pack=True).eval()
    batch = _batch(_frames([5, 9, 2]))
    torch.testing.assert_close(a(batch["x"], batch["lengths"]), b(batch["x"], batch["lengths"]), rtol=1e-5, atol=1e-6)


def test_reverse_padded_keeps_padding():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    assert reverse_padded(x, torch.tensor([3, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def test_replica_r_is_the_plain_model_of_its_seed():
    seeds = [11, 12, 13]
    batched = create_model("bilstm_tokens", vocab_size=20, embed_dim=6, replicas=3, seeds=seeds).eval()
    batch = _batch(_tokens([4, 8, 6]))
    out = batched(batch["x"], batch["lengths"])
    for r, seed in enumerate(seeds):
        plain = create_model("bilstm_tokens", vocab_size=20, embed_dim=6, seeds=[seed]).eval()
        torch.testing.assert_close(batched.replica_state(r), plain.state_dict())
        torch.testing.assert_close(out[:, r], plain(batch["x"], batch["lengths"])[:, 0], rtol=1e-5, atol=1e-6)


def test_batched_training_step_equals_separate_steps():
    """Adam on the sum of the replicas' losses, off-block gradients masked = each model on its own."""
    seeds = [1, 2]
    kw = dict(input_dim=17, input_dropout=0.0, head_dropout=0.0)
    batched = create_model("bilstm_au", replicas=2, seeds=seeds, **kw)
    plains = [create_model("bilstm_au", seeds=[s], **kw) for s in seeds]
    batch = _batch(_frames([6, 3, 9, 4]))
    y = torch.randn(4, 2)
    opt = torch.optim.Adam(batched.parameters(), lr=1e-2)
    for _ in range(3):
        loss = ((batched(batch["x"], batch["lengths"])[:, :, 0] - y) ** 2).mean(0).sum()
        opt.zero_grad()
        loss.backward()
        batched.mask_grads()
        opt.step()
    for r, plain in enumerate(plains):
        opt = torch.optim.Adam(plain.parameters(), lr=1e-2)
        for _ in range(3):
            loss = ((plain(batch["x"], batch["lengths"])[:, 0, 0] - y[:, r]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        torch.testing.assert_close(batched.replica_state(r), plain.state_dict(), rtol=1e-4, atol=1e-6)
    # off-block LSTM entries stayed exactly zero
    owner = batched.replica_owner()
    assert all(bool((p[owner[n] < 0] == 0).all()) for n, p in batched.named_parameters())


def test_merge_replicas_copies_only_the_chosen_ones():
    m = create_model("bilstm_au", input_dim=17, replicas=3, seeds=[1, 2, 3])
    best = {k: torch.zeros_like(v) for k, v in m.state_dict().items()}
    m.merge_replicas(best, torch.tensor([False, True, False]))
    single = m.replica_state(1)
    holder = create_model("bilstm_au", input_dim=17, replicas=3, seeds=[1, 2, 3])
    holder.load_state_dict(best)
    torch.testing.assert_close(holder.replica_state(1), single)
    assert all(float(v.abs().sum()) == 0 for v in holder.replica_state(0).values())


def test_registry_rejects_unknown_name_listing_known_ones():
    with pytest.raises(KeyError) as err:
        create_model("bilstm_glov")
    for name in ("bilstm_au", "bilstm_tokens", "bilstm_glove", "random", "static_lr", "cdm_svr"):
        assert name in str(err.value) and name in known_models()


def _embeddings(path, fp, V=20, d=4):
    save_torch({"W": torch.randn(V, d), "W_tilde": torch.randn(V, d), "b": torch.zeros(V), "b_tilde": torch.zeros(V),
                "tokens": [str(i) for i in range(V)], "fingerprint": fp}, path / f"embeddings_d{d}.pt")


def test_glove_initialises_from_w_plus_w_tilde(tmp_path):
    _embeddings(tmp_path, "abc")
    emb = torch.load(tmp_path / "embeddings_d4.pt", weights_only=True)
    vectors = read_embeddings(tmp_path, d=4, tokens_fingerprint="abc", vocab_size=20)
    m = create_model("bilstm_glove", vectors=vectors, replicas=2)
    torch.testing.assert_close(m.replica_state(1)["embedding"], emb["W"] + emb["W_tilde"])
    frozen = create_model("bilstm_glove", vectors=vectors, freeze=True)
    assert not frozen.embedding.requires_grad


def test_glove_refuses_another_vocabulary(tmp_path):
    _embeddings(tmp_path, "abc")
    with pytest.raises(ValueError, match="vocabulary"):
        read_embeddings(tmp_path, d=4, tokens_fingerprint="xyz", vocab_size=20)
    with pytest.raises(ValueError, match="vocab_size"):
        read_embeddings(tmp_path, d=4, tokens_fingerprint="abc", vocab_size=21)
    with pytest.raises(FileNotFoundError):
        read_embeddings(tmp_path, d=8, tokens_fingerprint="abc", vocab_size=20)


def test_checkpointed_replica_loads_weights_only(tmp_path):
    """best.pt keeps one replica as a plain state + kwargs: loaded with weights_only into a plain
    BiLSTMRegressor it must predict what that replica predicted inside the batched model."""
    m = create_model("bilstm_au", input_dim=17, replicas=2, seeds=[5, 6]).eval()
    save_torch({"state": m.replica_state(1), "kwargs": m.kw}, tmp_path / "best.pt")
    ck = torch.load(tmp_path / "best.pt", weights_only=True)
    plain = BiLSTMRegressor(**ck["kwargs"])
    plain.load_state_dict(ck["state"])
    plain.eval()
    batch = _batch(_frames([5, 9, 2]))
    want = m(batch["x"], batch["lengths"])[:, 1]                        # (B, 1) replica 1
    got = plain(batch["x"], batch["lengths"])[:, 0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, m(batch["x"], batch["lengths"])[:, 0])  # not replica 0's


def _train_steps(model, batch, y, steps=3):
    """Plain Adam on the sum of the replicas' MSEs (what training/loop.py does), dropout off."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        dev = model.w1.device
        loss = ((model(batch["x"].to(dev), batch["lengths"])[:, :, 0] - y.to(dev)) ** 2).mean(0).sum()
        opt.zero_grad()
        loss.backward()
        model.mask_grads()
        opt.step()
    return model


@pytest.mark.gpu
def test_cuda_replicas_match_cpu_and_train():
    """Independent expectation: the CPU computes the same network, so CUDA's forward pass, its
    trained replicas (same data, same Adam steps, dropout off) and the chosen-replica merge must
    equal the CPU's up to float rounding."""
    kw = dict(vocab_size=20, embed_dim=6, replicas=3, seeds=[1, 2, 3], input_dropout=0.0, head_dropout=0.0)
    cpu = create_model("bilstm_tokens", **kw)
    gpu = create_model("bilstm_tokens", **kw).cuda()
    cpu.replica_owner()  # the owner cache must follow the model to the device
    batch = _batch(_tokens([5, 9, 2]))
    cpu.eval(), gpu.eval()
    torch.testing.assert_close(gpu(batch["x"].cuda(), batch["lengths"]).cpu(), cpu(batch["x"], batch["lengths"]),
                               rtol=1e-3, atol=1e-4)
    before = {r: gpu.replica_state(r) for r in range(3)}
    y = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))        # (B, R) a target per replica
    _train_steps(cpu.train(), batch, y), _train_steps(gpu.train(), batch, y)
    for r in range(3):
        got = gpu.replica_state(r)
        assert all(v.device.type == "cpu" for v in got.values())
        torch.testing.assert_close(got, cpu.replica_state(r), rtol=1e-3, atol=1e-4)
        assert not torch.equal(got["w2"], before[r]["w2"])                     # it did train
    # keep replicas 0 and 2 of the trained model, replica 1 as it was before training
    holder = create_model("bilstm_tokens", **kw).cuda()
    best = {k: v.clone() for k, v in holder.state_dict().items()}
    gpu.merge_replicas(best, torch.tensor([True, False, True]))
    holder.load_state_dict(best)
    for r in (0, 2):
        torch.testing.assert_close(holder.replica_state(r), gpu.replica_state(r), rtol=0, atol=0)
    torch.testing.assert_close(holder.replica_state(1), before[1], rtol=0, atol=0)
